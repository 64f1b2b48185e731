/*
 * fuzz_util.h: what the libFuzzer harnesses of tests/fuzz share: a scratch
 * folder on tmpfs, writing an input to a file, a free loopback port, and one
 * raw exchange with a server on 127.0.0.1 (write the bytes, half-close, read
 * until the server closes).
 *
 * Harnesses are single-threaded on their side; the servers they start run
 * their own threads. Any failure of the fixture itself (no tmpfs, no socket)
 * aborts: a harness that silently tests nothing is worse than none.
 */
#ifndef R3D_FUZZ_UTIL_H
#define R3D_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"

/* libFuzzer's entry points (declared here for -Wmissing-prototypes). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_PATH_MAX 512
/* A server that has not closed by then hangs. Not less: a command set whose
 * element declares ~4 GB makes DCMTK allocate that much before it reads,
 * which takes ~5 s under ASan on a loaded machine (tests/fuzz/regress/pdu/
 * huge-command-element.pdu; docs/security.md, "Fuzzing", finding 2). */
#define FUZZ_EXCHANGE_TIMEOUT_MS 20000

/* Silences recon3d's own log (every level) for the harness' lifetime. */
void fuzz_log_off(void);

/* Makes a fresh folder named after tag under /dev/shm (or $TMPDIR, /tmp) and
 * writes its path into out. Removed at exit. Aborts on failure. */
void fuzz_scratch_dir(const char *tag, char out[FUZZ_PATH_MAX]);

/* Writes data to path (created or truncated). Aborts on failure. */
void fuzz_write_file(const char *path, const uint8_t *data, size_t size);

/* A TCP port on 127.0.0.1 that nothing listens on right now. */
int fuzz_free_port(void);

/* Connects to 127.0.0.1:port, writes data (a peer that stops reading is
 * fine), shuts the write side, and reads until the server closes. Returns
 * the bytes read, or -1 when the server neither closed nor answered within
 * FUZZ_EXCHANGE_TIMEOUT_MS. Aborts when it cannot connect. */
long fuzz_exchange(int port, const uint8_t *data, size_t size);

/* Aborts with "R3D-FUZZ-HANG what" on stderr (bench/fuzz counts these as
 * hangs, not crashes). */
void fuzz_hang(const char *what) __attribute__((noreturn));

/* The "a clear error out" property: a function that failed must say why.
 * Aborts with "R3D-FUZZ-NOREASON what" when err carries no code or an empty
 * message. */
void fuzz_check_reason(const struct r3d_err *err, const char *what);

#endif
