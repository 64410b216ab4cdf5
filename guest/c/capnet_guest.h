/* What the capnet C guests share: addresses in wasi:sockets shape, the WIT names of error
 * codes, and the one-line error report `error: OPERATION ADDR: CODE`.
 *
 * The guests call the wasi:sockets bindings that `wit-bindgen c` generates from the project's
 * WIT (c_command.h); stdio, arguments and exit come from wasi-libc through the preview1 adapter.
 * Each guest is a reactor module whose wasi:cli/run (capnet_guest.c) runs its `main`. */
#ifndef CAPNET_GUEST_H
#define CAPNET_GUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "c_command.h"

typedef wasi_sockets_network_ip_socket_address_t capnet_addr_t;
typedef wasi_sockets_network_error_code_t capnet_error_t;

/* The WIT name of a wasi:sockets error code, e.g. "access-denied". */
const char *capnet_error_name(capnet_error_t code);

/* The cause of a failed stream operation: "closed" or the host's description. The caller
 * frees nothing; the text lives until the next call. */
const char *capnet_stream_error(wasi_io_streams_stream_error_t *error);

/* Parses "IP:PORT" or "[IPV6]:PORT" into `addr` and its family; false if it is neither. */
bool capnet_parse_addr(const char *text, capnet_addr_t *addr,
                       wasi_sockets_network_ip_address_family_t *family);

/* Formats `addr` as "IP:PORT" or "[IPV6]:PORT" into `out` (at least 64 bytes). */
void capnet_format_addr(const capnet_addr_t *addr, char *out, size_t size);

/* Prints `error: OPERATION ADDR: CAUSE` to stderr and exits 1. */
_Noreturn void capnet_fail(const char *operation, const char *addr, const char *cause);

/* Prints the problem and the usage line to stderr and exits 2. */
_Noreturn void capnet_usage(const char *usage, const char *problem);

/* Writes all of `data` to `stream` in pieces blocking-write-and-flush takes (4096 bytes at
 * most); on failure reports `write ADDR` and exits. */
void capnet_write_all(wasi_io_streams_borrow_output_stream_t stream, const uint8_t *data,
                      size_t len, const char *addr);

#endif
