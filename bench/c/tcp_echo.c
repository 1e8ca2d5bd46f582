/*
 * The event loop's own share of a round trip, for `npm run bench:rpc`: a 32-byte TCP echo over
 * loopback, one message at a time, from plain C and (in bench/rpc.ts) from a Node net.Socket,
 * against the same echo server. No Erlang and no ei: what any Node client pays per round trip
 * before it does any work of its own.
 *
 *   tcp_echo server            prints "ready PORT", echoes one connection after another
 *   tcp_echo client PORT N     prints {"calls":N,"seconds":S}
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG 32

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static int serve(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0 ||
      getsockname(s, (struct sockaddr *)&a, &len) != 0) {
    perror("tcp_echo server");
    return 1;
  }
  printf("ready %d\n", ntohs(a.sin_port));
  fflush(stdout);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[4096];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
      for (ssize_t done = 0; done < n;) {
        ssize_t w = write(c, buf + done, (size_t)(n - done));
        if (w <= 0) break;
        done += w;
      }
    }
    close(c);
  }
}

static int client(int port, long calls) {
  int c = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = loopback(port);
  if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("tcp_echo client");
    return 1;
  }
  int one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char msg[MSG], buf[MSG];
  memset(msg, 'x', sizeof msg);
  double t0 = now();
  for (long i = 0; i < calls; i++) {
    if (write(c, msg, MSG) != MSG) return 1;
    for (size_t got = 0; got < MSG;) {
      ssize_t r = read(c, buf, MSG - got);
      if (r <= 0) return 1;
      got += (size_t)r;
    }
  }
  printf("{\"calls\":%ld,\"seconds\":%.6f}\n", calls, now() - t0);
  close(c);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "server") == 0) return serve();
  if (argc == 4 && strcmp(argv[1], "client") == 0) return client(atoi(argv[2]), atol(argv[3]));
  fprintf(stderr, "usage: %s server | client PORT CALLS\n", argv[0]);
  return 2;
}
