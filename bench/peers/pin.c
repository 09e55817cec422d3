/* pin: runs a command on the given CPUs (like taskset -c), for bare machines without util-linux.
 *   pin 1-8 corio-load --reactors 8 ... */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: pin CPULIST COMMAND [ARGS...]   (CPULIST: 0,2,4-7)\n");
    return 2;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  for (char *part = strtok(argv[1], ","); part; part = strtok(NULL, ",")) {
    char *dash = strchr(part, '-');
    int lo = atoi(part), hi = dash ? atoi(dash + 1) : lo;
    for (int c = lo; c <= hi && c < CPU_SETSIZE; c++) CPU_SET(c, &set);
  }
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    perror("pin: sched_setaffinity");
    return 1;
  }
  execvp(argv[2], argv + 2);
  perror("pin: exec");
  return 127;
}
