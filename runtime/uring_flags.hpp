// io_uring constants newer than the liburing 2.3 headers corio builds against (values from the kernel's
// include/uapi/linux/io_uring.h). Whether the running kernel has them is probed, never assumed.
#pragma once
#include <liburing.h>

#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)  // 6.2: a send_zc notification says whether data was copied
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif
