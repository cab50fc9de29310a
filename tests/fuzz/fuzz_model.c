/* fuzz_model.c - libFuzzer driver: the model-file loader (st_open's safetensors validation,
 * then model_load's metadata, architecture and shape checks and BatchNorm folding).
 *
 * model_load takes a path, so each input is written to a memfd and loaded as
 * /proc/self/fd/N. Two input forms, by the low bit of the first byte:
 *   0: the rest is the whole file, verbatim (lying lengths, truncation, garbage);
 *   1: u32 LE data length, then the JSON header. The driver writes the 8-byte header length,
 *      the header and a data section of that many bytes (capped at 32 MiB): zeros, or
 *      (bit 1 of the first byte) a repeated float chosen by bits 2-3 (NaN, Inf, 1e30, -1).
 *      Real headers with their real data length load; mutated ones lie about it.
 * Checks: a failure has a message; a success has sane info and frees cleanly. The file's
 * "preprocess" metadata then goes through the image layer's parser (preprocess_from_model),
 * as it does after every model_load in the daemon and the CLI.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/engine.h"
#include "image/preprocess.h"

#define MAX_DATA (32u << 20)

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int build(int fd, const uint8_t *data, size_t size)
{
    unsigned sel = data[0];
    if (!(sel & 1)) return write_all(fd, data + 1, size - 1);
    if (size < 5) return -1;
    uint32_t dlen = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 |
                    (uint32_t)data[4] << 24;
    if (dlen > MAX_DATA) dlen %= MAX_DATA;
    uint64_t hlen = size - 5;
    unsigned char h8[8];
    for (int i = 0; i < 8; i++) h8[i] = (unsigned char)(hlen >> (8 * i));
    if (write_all(fd, h8, 8) || write_all(fd, data + 5, hlen)) return -1;
    if (!(sel & 2)) return ftruncate(fd, (off_t)(8 + hlen + dlen)); /* zeros, sparse */
    static const float fills[4] = {NAN, INFINITY, 1e30f, -1.0f};
    static float chunk[16384];
    for (size_t i = 0; i < sizeof chunk / sizeof chunk[0]; i++) chunk[i] = fills[(sel >> 2) & 3];
    size_t left = dlen;
    while (left) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        if (write_all(fd, chunk, n)) return -1;
        left -= n;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int fd = memfd_create("fuzzmodel", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (build(fd, data, size)) {
        close(fd);
        return 0;
    }
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    err[0] = 0;
    model *m = NULL;
    int rc = model_load(path, NULL, &m, err, sizeof err);
    if (rc == XBN_OK) {
        const model_info *in = model_get_info(m);
        if (!m || !in || in->classes < 1 || in->input_size < 1) abort();
        /* the spec, as the daemon and the CLI build it right after model_load */
        preprocess_spec pre;
        err[0] = 0;
        int bad = preprocess_from_model(in->preprocess_json, in->input_size, &pre, err, sizeof err);
        if (bad && !err[0]) abort();
        if (!bad && (pre.crop < 1 || pre.resize < 1)) abort();
        model_free(m);
    } else if (m || !err[0]) {
        abort();
    }
    close(fd);
    return 0;
}
