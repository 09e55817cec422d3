/* raw-uring-echo: the "practical limit" reference for bench/echo-compare: one thread, hand-written
 * liburing: SINGLE_ISSUER + DEFER_TASKRUN, multishot accept, multishot receive into a provided buffer ring
 * (mapped by hand: liburing 2.3), sends straight from the received buffer, one send in flight per
 * connection (later chunks queue behind it so the byte order holds), buffers back to the ring after send.
 *   raw-uring-echo 127.0.0.1 7000 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

enum { ACCEPT = 1, RECV = 2, SEND = 3 };
#define BUFS 4096
#define BUF_SIZE 4096
#define MAX_FDS 65536
#define QUEUE 64

struct conn {
  int sending;            /* a send is in flight */
  unsigned head, count;   /* queued chunks waiting to be sent */
  unsigned short bid[QUEUE];
  unsigned len[QUEUE];
  unsigned off;           /* bytes of the head chunk already sent */
  int closing;
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static struct conn *conns;
static int listen_fd;

static struct io_uring_sqe *sqe_get(void) {
  struct io_uring_sqe *s = io_uring_get_sqe(&ring);
  while (!s) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

static unsigned long long tag(int type, int fd) { return ((unsigned long long)fd << 8) | (unsigned)type; }

static void arm_accept(void) {
  struct io_uring_sqe *s = sqe_get();
  io_uring_prep_multishot_accept(s, listen_fd, NULL, NULL, 0);
  io_uring_sqe_set_data64(s, tag(ACCEPT, listen_fd));
}

static void arm_recv(int fd) {
  struct io_uring_sqe *s = sqe_get();
  io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = 0;
  io_uring_sqe_set_data64(s, tag(RECV, fd));
}

static void give_back(unsigned short bid) {
  io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, bid, io_uring_buf_ring_mask(BUFS), 0);
  io_uring_buf_ring_advance(br, 1);
}

static void send_head(int fd) {
  struct conn *c = &conns[fd];
  unsigned i = c->head % QUEUE;
  struct io_uring_sqe *s = sqe_get();
  io_uring_prep_send(s, fd, bufs + (size_t)c->bid[i] * BUF_SIZE + c->off, c->len[i] - c->off, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, tag(SEND, fd));
  c->sending = 1;
}

static void drop(int fd) {
  struct conn *c = &conns[fd];
  while (c->count) {
    give_back(c->bid[c->head % QUEUE]);
    c->head++;
    c->count--;
  }
  c->closing = 1;
  if (!c->sending) {
    close(fd);
    memset(c, 0, sizeof *c);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: raw-uring-echo HOST PORT\n");
    return 2;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  conns = calloc(MAX_FDS, sizeof *conns);

  struct io_uring_params p = {0};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = 16384;
  int ret = io_uring_queue_init_params(4096, &ring, &p);
  if (ret < 0) {
    fprintf(stderr, "raw-uring-echo: io_uring_queue_init_params: %s\n", strerror(-ret));
    return 1;
  }
  br = mmap(NULL, BUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  bufs = malloc((size_t)BUFS * BUF_SIZE);
  struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)br, .ring_entries = BUFS, .bgid = 0};
  if ((ret = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) {
    fprintf(stderr, "raw-uring-echo: io_uring_register_buf_ring: %s\n", strerror(-ret));
    return 1;
  }
  io_uring_buf_ring_init(br);
  for (int i = 0; i < BUFS; i++) give_back((unsigned short)i);

  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* inherited by accepted sockets */
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
  inet_pton(AF_INET, argv[1], &a.sin_addr);
  socklen_t alen = sizeof a;
  if (bind(listen_fd, (struct sockaddr *)&a, sizeof a) || listen(listen_fd, 4096) ||
      getsockname(listen_fd, (struct sockaddr *)&a, &alen)) {
    perror("raw-uring-echo: bind/listen");
    return 1;
  }
  printf("listening on %s:%u\n", argv[1], ntohs(a.sin_port));
  fflush(stdout);
  arm_accept();

  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      seen++;
      int type = (int)(cqe->user_data & 0xff), fd = (int)(cqe->user_data >> 8), res = cqe->res;
      int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
      if (type == ACCEPT) {
        if (res >= 0 && res < MAX_FDS) {
          memset(&conns[res], 0, sizeof conns[res]);
          arm_recv(res);
        } else if (res >= 0) {
          close(res);
        }
        if (!more) arm_accept();
      } else if (type == RECV) {
        struct conn *c = &conns[fd];
        if (res > 0) {
          unsigned short bid = (unsigned short)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
          if (c->closing || c->count == QUEUE) {
            give_back(bid);
          } else {
            unsigned i = (c->head + c->count) % QUEUE;
            c->bid[i] = bid;
            c->len[i] = (unsigned)res;
            if (c->count++ == 0 && !c->sending) {
              c->off = 0;
              send_head(fd);
            }
          }
          if (!more && !c->closing) arm_recv(fd);
        } else if (res == -ENOBUFS) {
          if (!more) arm_recv(fd);
        } else if (!more && !c->closing) {
          drop(fd); /* end of stream or error */
        }
      } else if (type == SEND) {
        struct conn *c = &conns[fd];
        c->sending = 0;
        if (c->closing) {
          if (c->count == 0) {
            close(fd);
            memset(c, 0, sizeof *c);
          }
        } else if (res < 0) {
          drop(fd);
        } else {
          unsigned i = c->head % QUEUE;
          c->off += (unsigned)res;
          if (c->off == c->len[i]) {
            give_back(c->bid[i]);
            c->head++;
            c->count--;
            c->off = 0;
          }
          if (c->count) send_head(fd);
        }
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
