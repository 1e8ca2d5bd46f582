/*
 * The floor for erl-peb's connection overhead: the same calls made by plain C over the same libei,
 * one connection, N calls in flight. Prints one JSON line: {"mode":..,"inflight":..,"calls":..,"seconds":..}.
 *
 *   ei_bench NODE COOKIE call|rpc INFLIGHT CALLS
 *
 * call: {'$gen_call', {Self, Ref}, ping} to the registered server erl_peb_bench_echo -> {Ref, ping}
 * rpc:  {'$gen_call', {Self, Ref}, {call, erlang, node, [], user}} to rex -> {Ref, Node}
 */
#include <ei.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int send_call(ei_cnode *ec, int fd, int rpc, unsigned serial) {
  ei_x_buff x;
  erlang_ref ref;
  ei_make_ref(ec, &ref);
  ref.n[2] = serial; /* correlation id, as the addon does */
  ei_x_new_with_version(&x);
  ei_x_encode_tuple_header(&x, 3);
  ei_x_encode_atom(&x, "$gen_call");
  ei_x_encode_tuple_header(&x, 2);
  ei_x_encode_pid(&x, ei_self(ec));
  ei_x_encode_ref(&x, &ref);
  if (rpc) {
    ei_x_encode_tuple_header(&x, 5);
    ei_x_encode_atom(&x, "call");
    ei_x_encode_atom(&x, "erlang");
    ei_x_encode_atom(&x, "node");
    ei_x_encode_empty_list(&x);
    ei_x_encode_atom(&x, "user");
  } else {
    ei_x_encode_atom(&x, "ping");
  }
  int rc = ei_reg_send_tmo(ec, fd, rpc ? "rex" : "erl_peb_bench_echo", x.buff, x.index, 5000);
  ei_x_free(&x);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s NODE COOKIE call|rpc INFLIGHT CALLS\n", argv[0]);
    return 2;
  }
  const char *node = argv[1], *cookie = argv[2];
  int rpc = strcmp(argv[3], "rpc") == 0;
  long inflight = atol(argv[4]), calls = atol(argv[5]);
  if (inflight < 1 || calls < inflight) {
    fprintf(stderr, "INFLIGHT must be >= 1 and CALLS >= INFLIGHT\n");
    return 2;
  }
  ei_init();
  ei_cnode ec;
  char alive[64], full[128];
  snprintf(alive, sizeof alive, "ei_bench_%d", (int)getpid());
  snprintf(full, sizeof full, "%s@127.0.0.1", alive);
  if (ei_connect_xinit(&ec, "127.0.0.1", alive, full, NULL, cookie, (unsigned)time(NULL)) < 0) {
    fprintf(stderr, "ei_connect_xinit failed\n");
    return 1;
  }
  int fd = ei_connect_tmo(&ec, (char *)node, 5000);
  if (fd < 0) {
    fprintf(stderr, "cannot connect to %s (erl_errno %d)\n", node, erl_errno);
    return 1;
  }
  ei_x_buff in;
  ei_x_new(&in);
  erlang_msg msg;
  long sent = 0, done = 0;
  double t0 = now();
  for (; sent < inflight; sent++)
    if (send_call(&ec, fd, rpc, (unsigned)sent) < 0) return 1;
  while (done < calls) {
    int r = ei_xreceive_msg_tmo(fd, &msg, &in, 5000);
    if (r == ERL_TICK) continue;
    if (r == ERL_ERROR) {
      fprintf(stderr, "receive failed (erl_errno %d)\n", erl_errno);
      return 1;
    }
    /* Check the reply is {Ref, _}: the same work the addon does to match it. */
    int idx = 0, ver, arity;
    erlang_ref ref;
    if (ei_decode_version(in.buff, &idx, &ver) < 0 || ei_decode_tuple_header(in.buff, &idx, &arity) < 0 || arity != 2 ||
        ei_decode_ref(in.buff, &idx, &ref) < 0) {
      fprintf(stderr, "unexpected message\n");
      return 1;
    }
    done++;
    if (sent < calls) {
      if (send_call(&ec, fd, rpc, (unsigned)sent) < 0) return 1;
      sent++;
    }
  }
  double secs = now() - t0;
  printf("{\"mode\":\"%s\",\"inflight\":%ld,\"calls\":%ld,\"seconds\":%.6f}\n", rpc ? "rpc" : "call", inflight, calls, secs);
  ei_x_free(&in);
  close(fd);
  return 0;
}
