/* `echo-server ADDR [MAX_CONNS]`: a TCP echo server on the wasi:sockets bindings.
 *
 * Binds and listens on ADDR, prints `listening on <actual local address>` (port 0 reports the
 * port the host chose), then serves connections one at a time: every byte a client sends is
 * written back until the client shuts down its sending side, and then the connection is
 * closed. After MAX_CONNS connections it exits 0 (default: serve forever).
 *
 * A failure prints one line `error: OPERATION ADDR: CODE` to stderr, with the WIT error-code
 * (`error: bind 127.0.0.1:0: access-denied`), and exits 1. A bad command line exits 2. */
#include <stdio.h>
#include <stdlib.h>

#include "capnet_guest.h"

static const char USAGE[] = "echo-server ADDR [MAX_CONNS]";

/* Calls `finish` until it stops failing with would-block, waiting on `ready` between tries;
 * on another error reports OPERATION ADDR and exits. */
static void finish(bool (*step)(wasi_sockets_tcp_borrow_tcp_socket_t, capnet_error_t *),
                   wasi_sockets_tcp_borrow_tcp_socket_t sock, wasi_io_poll_borrow_pollable_t ready,
                   const char *operation, const char *addr) {
  capnet_error_t code;
  while (!step(sock, &code)) {
    if (code != WASI_SOCKETS_NETWORK_ERROR_CODE_WOULD_BLOCK) {
      capnet_fail(operation, addr, capnet_error_name(code));
    }
    wasi_io_poll_method_pollable_block(ready);
  }
}

/* Writes back everything read from `input` until the peer closes its sending side. */
static void echo(wasi_io_streams_borrow_input_stream_t input,
                 wasi_io_streams_borrow_output_stream_t output, const char *peer) {
  for (;;) {
    c_command_list_u8_t bytes;
    wasi_io_streams_stream_error_t error;
    if (!wasi_io_streams_method_input_stream_blocking_read(input, 64 * 1024, &bytes, &error)) {
      if (error.tag == WASI_IO_STREAMS_STREAM_ERROR_CLOSED) return;
      capnet_fail("read", peer, capnet_stream_error(&error));
    }
    capnet_write_all(output, bytes.ptr, bytes.len, peer);
    c_command_list_u8_free(&bytes);
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) capnet_usage(USAGE, "expected ADDR and an optional MAX_CONNS");
  const char *text = argv[1];
  capnet_addr_t addr;
  wasi_sockets_network_ip_address_family_t family;
  if (!capnet_parse_addr(text, &addr, &family)) {
    capnet_usage(USAGE, "ADDR is not IP:PORT or [IPV6]:PORT");
  }
  long long max_conns = -1;
  if (argc == 3) {
    char *end;
    max_conns = strtoll(argv[2], &end, 10);
    if (*end != '\0' || max_conns < 0) capnet_usage(USAGE, "MAX_CONNS is not a number");
  }

  wasi_sockets_network_own_network_t network = wasi_sockets_instance_network_instance_network();
  wasi_sockets_tcp_own_tcp_socket_t listener;
  capnet_error_t code;
  if (!wasi_sockets_tcp_create_socket_create_tcp_socket(family, &listener, &code)) {
    capnet_fail("create-tcp-socket", text, capnet_error_name(code));
  }
  wasi_sockets_tcp_borrow_tcp_socket_t sock = wasi_sockets_tcp_borrow_tcp_socket(listener);
  wasi_io_poll_own_pollable_t ready_own = wasi_sockets_tcp_method_tcp_socket_subscribe(sock);
  wasi_io_poll_borrow_pollable_t ready = wasi_io_poll_borrow_pollable(ready_own);

  if (!wasi_sockets_tcp_method_tcp_socket_start_bind(
          sock, wasi_sockets_network_borrow_network(network), &addr, &code)) {
    capnet_fail("bind", text, capnet_error_name(code));
  }
  finish(wasi_sockets_tcp_method_tcp_socket_finish_bind, sock, ready, "bind", text);
  if (!wasi_sockets_tcp_method_tcp_socket_start_listen(sock, &code)) {
    capnet_fail("listen", text, capnet_error_name(code));
  }
  finish(wasi_sockets_tcp_method_tcp_socket_finish_listen, sock, ready, "listen", text);

  capnet_addr_t bound;
  if (!wasi_sockets_tcp_method_tcp_socket_local_address(sock, &bound, &code)) {
    capnet_fail("local-address", text, capnet_error_name(code));
  }
  char local[80];
  capnet_format_addr(&bound, local, sizeof local);
  printf("listening on %s\n", local);
  fflush(stdout);

  for (long long served = 0; max_conns < 0 || served < max_conns; served++) {
    wasi_sockets_tcp_tuple3_own_tcp_socket_own_input_stream_own_output_stream_t conn;
    while (!wasi_sockets_tcp_method_tcp_socket_accept(sock, &conn, &code)) {
      if (code != WASI_SOCKETS_NETWORK_ERROR_CODE_WOULD_BLOCK) {
        capnet_fail("accept", local, capnet_error_name(code));
      }
      wasi_io_poll_method_pollable_block(ready);
    }
    char peer[80] = "peer";
    capnet_addr_t remote;
    if (wasi_sockets_tcp_method_tcp_socket_remote_address(
            wasi_sockets_tcp_borrow_tcp_socket(conn.f0), &remote, &code)) {
      capnet_format_addr(&remote, peer, sizeof peer);
    }
    echo(wasi_io_streams_borrow_input_stream(conn.f1),
         wasi_io_streams_borrow_output_stream(conn.f2), peer);
    /* Children before their parent: the streams go before the socket they came from. */
    wasi_io_streams_input_stream_drop_own(conn.f1);
    wasi_io_streams_output_stream_drop_own(conn.f2);
    wasi_sockets_tcp_tcp_socket_drop_own(conn.f0);
  }

  wasi_io_poll_pollable_drop_own(ready_own);
  wasi_sockets_tcp_tcp_socket_drop_own(listener);
  wasi_sockets_network_network_drop_own(network);
  return 0;
}
