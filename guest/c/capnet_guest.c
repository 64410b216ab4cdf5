/* See capnet_guest.h. */
#include "capnet_guest.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const ERROR_NAMES[] = {
    "unknown",
    "access-denied",
    "not-supported",
    "invalid-argument",
    "out-of-memory",
    "timeout",
    "concurrency-conflict",
    "not-in-progress",
    "would-block",
    "invalid-state",
    "new-socket-limit",
    "address-not-bindable",
    "address-in-use",
    "remote-unreachable",
    "connection-refused",
    "connection-reset",
    "connection-aborted",
    "datagram-too-large",
    "name-unresolvable",
    "temporary-resolver-failure",
    "permanent-resolver-failure",
};

const char *capnet_error_name(capnet_error_t code) {
  if (code < sizeof ERROR_NAMES / sizeof ERROR_NAMES[0]) return ERROR_NAMES[code];
  return "unknown";
}

const char *capnet_stream_error(wasi_io_streams_stream_error_t *error) {
  static char text[256];
  if (error->tag == WASI_IO_STREAMS_STREAM_ERROR_CLOSED) return "closed";
  wasi_io_error_own_error_t own = error->val.last_operation_failed;
  c_command_string_t debug;
  wasi_io_error_method_error_to_debug_string(wasi_io_error_borrow_error(own), &debug);
  snprintf(text, sizeof text, "%.*s", (int)debug.len, (const char *)debug.ptr);
  c_command_string_free(&debug);
  wasi_io_error_error_drop_own(own);
  return text;
}

bool capnet_parse_addr(const char *text, capnet_addr_t *addr,
                       wasi_sockets_network_ip_address_family_t *family) {
  const char *colon = strrchr(text, ':');
  if (colon == NULL || colon[1] == '\0') return false;
  char *end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (*end != '\0' || port > 65535) return false;
  char host[64];
  size_t host_len = (size_t)(colon - text);
  if (host_len == 0 || host_len >= sizeof host) return false;
  memcpy(host, text, host_len);
  host[host_len] = '\0';

  if (host[0] == '[' && host[host_len - 1] == ']') {
    host[host_len - 1] = '\0';
    uint8_t b[16];
    if (inet_pton(AF_INET6, host + 1, b) != 1) return false;
    *family = WASI_SOCKETS_NETWORK_IP_ADDRESS_FAMILY_IPV6;
    addr->tag = WASI_SOCKETS_NETWORK_IP_SOCKET_ADDRESS_IPV6;
    wasi_sockets_network_ipv6_socket_address_t *v6 = &addr->val.ipv6;
    memset(v6, 0, sizeof *v6);
    v6->port = (uint16_t)port;
    uint16_t *parts[8] = {&v6->address.f0, &v6->address.f1, &v6->address.f2, &v6->address.f3,
                          &v6->address.f4, &v6->address.f5, &v6->address.f6, &v6->address.f7};
    for (int i = 0; i < 8; i++) *parts[i] = (uint16_t)(b[2 * i] << 8 | b[2 * i + 1]);
    return true;
  }
  uint8_t b[4];
  if (inet_pton(AF_INET, host, b) != 1) return false;
  *family = WASI_SOCKETS_NETWORK_IP_ADDRESS_FAMILY_IPV4;
  addr->tag = WASI_SOCKETS_NETWORK_IP_SOCKET_ADDRESS_IPV4;
  addr->val.ipv4.port = (uint16_t)port;
  addr->val.ipv4.address = (wasi_sockets_network_ipv4_address_t){b[0], b[1], b[2], b[3]};
  return true;
}

void capnet_format_addr(const capnet_addr_t *addr, char *out, size_t size) {
  if (addr->tag == WASI_SOCKETS_NETWORK_IP_SOCKET_ADDRESS_IPV4) {
    const wasi_sockets_network_ipv4_socket_address_t *v4 = &addr->val.ipv4;
    snprintf(out, size, "%u.%u.%u.%u:%u", v4->address.f0, v4->address.f1, v4->address.f2,
             v4->address.f3, v4->port);
    return;
  }
  const wasi_sockets_network_ipv6_socket_address_t *v6 = &addr->val.ipv6;
  const uint16_t parts[8] = {v6->address.f0, v6->address.f1, v6->address.f2, v6->address.f3,
                             v6->address.f4, v6->address.f5, v6->address.f6, v6->address.f7};
  uint8_t b[16];
  for (int i = 0; i < 8; i++) {
    b[2 * i] = (uint8_t)(parts[i] >> 8);
    b[2 * i + 1] = (uint8_t)parts[i];
  }
  char ip[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, b, ip, sizeof ip);
  snprintf(out, size, "[%s]:%u", ip, v6->port);
}

void capnet_fail(const char *operation, const char *addr, const char *cause) {
  fflush(stdout);
  fprintf(stderr, "error: %s %s: %s\n", operation, addr, cause);
  exit(1);
}

void capnet_usage(const char *usage, const char *problem) {
  fprintf(stderr, "error: %s\nusage: %s\n", problem, usage);
  exit(2);
}

void capnet_write_all(wasi_io_streams_borrow_output_stream_t stream, const uint8_t *data,
                      size_t len, const char *addr) {
  while (len > 0) {
    size_t n = len < 4096 ? len : 4096;
    c_command_list_u8_t chunk = {(uint8_t *)data, n};
    wasi_io_streams_stream_error_t error;
    if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(stream, &chunk, &error)) {
      capnet_fail("write", addr, capnet_stream_error(&error));
    }
    data += n;
    len -= n;
  }
}

/* wasi-libc's entry to `main`: reads the arguments and calls main(argc, argv). */
int __main_void(void);

/* wasi:cli/run. The module is a reactor, so no export is wrapped in libc's constructors and
 * destructors (wit-component runs `_initialize`, the constructors, once at instantiation).
 * `exit` flushes stdio and reports main's status, as a command's `_start` would. */
bool exports_wasi_cli_run_run(void) {
  exit(__main_void());
}

