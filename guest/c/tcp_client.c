/* `tcp-client ADDR MESSAGE`: connects to ADDR (`IP:PORT` or `[IPV6]:PORT`), sends MESSAGE,
 * shuts down its sending side, and prints everything that comes back until the peer closes.
 *
 * A failure prints one line `error: OPERATION ADDR: CODE` to stderr, where CODE is the WIT
 * error-code (`error: connect 127.0.0.1:9: access-denied`), and exits 1. The operations are
 * `create-tcp-socket`, `connect`, `write`, `shutdown` and `read`. A bad command line exits 2. */
#include <stdio.h>
#include <string.h>

#include "capnet_guest.h"

static const char USAGE[] = "tcp-client ADDR MESSAGE";

int main(int argc, char **argv) {
  if (argc != 3) capnet_usage(USAGE, "expected two arguments");
  const char *text = argv[1];
  const char *message = argv[2];
  capnet_addr_t addr;
  wasi_sockets_network_ip_address_family_t family;
  if (!capnet_parse_addr(text, &addr, &family)) {
    capnet_usage(USAGE, "ADDR is not IP:PORT or [IPV6]:PORT");
  }

  wasi_sockets_network_own_network_t network = wasi_sockets_instance_network_instance_network();
  wasi_sockets_tcp_own_tcp_socket_t socket;
  capnet_error_t code;
  if (!wasi_sockets_tcp_create_socket_create_tcp_socket(family, &socket, &code)) {
    capnet_fail("create-tcp-socket", text, capnet_error_name(code));
  }
  wasi_sockets_tcp_borrow_tcp_socket_t sock = wasi_sockets_tcp_borrow_tcp_socket(socket);

  wasi_io_poll_own_pollable_t ready = wasi_sockets_tcp_method_tcp_socket_subscribe(sock);
  if (!wasi_sockets_tcp_method_tcp_socket_start_connect(
          sock, wasi_sockets_network_borrow_network(network), &addr, &code)) {
    capnet_fail("connect", text, capnet_error_name(code));
  }
  wasi_sockets_tcp_tuple2_own_input_stream_own_output_stream_t streams;
  while (!wasi_sockets_tcp_method_tcp_socket_finish_connect(sock, &streams, &code)) {
    if (code != WASI_SOCKETS_NETWORK_ERROR_CODE_WOULD_BLOCK) {
      capnet_fail("connect", text, capnet_error_name(code));
    }
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
  }
  wasi_io_poll_pollable_drop_own(ready);
  wasi_io_streams_borrow_input_stream_t input = wasi_io_streams_borrow_input_stream(streams.f0);
  wasi_io_streams_borrow_output_stream_t output = wasi_io_streams_borrow_output_stream(streams.f1);

  capnet_write_all(output, (const uint8_t *)message, strlen(message), text);
  if (!wasi_sockets_tcp_method_tcp_socket_shutdown(sock, WASI_SOCKETS_TCP_SHUTDOWN_TYPE_SEND,
                                                   &code)) {
    capnet_fail("shutdown", text, capnet_error_name(code));
  }
  for (;;) {
    c_command_list_u8_t bytes;
    wasi_io_streams_stream_error_t error;
    if (!wasi_io_streams_method_input_stream_blocking_read(input, 64 * 1024, &bytes, &error)) {
      if (error.tag == WASI_IO_STREAMS_STREAM_ERROR_CLOSED) break;
      capnet_fail("read", text, capnet_stream_error(&error));
    }
    fwrite(bytes.ptr, 1, bytes.len, stdout);
    c_command_list_u8_free(&bytes);
  }
  fflush(stdout);

  /* Children before their parent: the streams go before the socket they came from. */
  wasi_io_streams_input_stream_drop_own(streams.f0);
  wasi_io_streams_output_stream_drop_own(streams.f1);
  wasi_sockets_tcp_tcp_socket_drop_own(socket);
  wasi_sockets_network_network_drop_own(network);
  return 0;
}
