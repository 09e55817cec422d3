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

// 6.9: NAPI busy polling for the sockets a ring waits on (io_uring_register_napi is newer than liburing 2.3).
#ifndef IORING_REGISTER_NAPI
#define IORING_REGISTER_NAPI 27
#endif
struct corio_uring_napi {  // struct io_uring_napi
  __u32 busy_poll_to;      // microseconds
  __u8 prefer_busy_poll;
  __u8 pad[3];
  __u64 resv;
};

// 6.10: a buffer-selecting receive may fill several ring buffers in one completion (a bundle): the
// completion names the first; the others are the ring entries after it, in order.
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif

// 6.12: a buffer ring whose buffers are consumed incrementally: a receive takes only the bytes it needs
// from the head buffer, which stays the kernel's (IORING_CQE_F_BUF_MORE) until it is full.
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
