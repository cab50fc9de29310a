/* fuzz_v1.c - libFuzzer driver: the v1 JSON predict body (row form {"instances":[...]} or
 * columnar form {"inputs":...}) with its base64 decoding (v1_parse_json, b64_decode), and
 * the v1 response builder.
 *
 * Input: the body, not NUL-terminated (an exact-size heap copy, as libFuzzer passes it).
 * Checks: on success 1..MAX_IMAGES owned blobs, top_k >= -1 and a known form; on failure no
 * output and a message; the response built from the image count is valid to its end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/b64.h"
#include "server/sbuf.h"
#include "server/api/v1.h"

#define MAX_IMAGES 8
#define CLASSES 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    blob *imgs = NULL;
    int n = -1;
    long top_k = -2;
    v1_form form = (v1_form)-1;
    char err[256];
    err[0] = 0;
    int rc = v1_parse_json((const char *)data, size, MAX_IMAGES, &imgs, &n, &top_k, &form, err,
                           sizeof err);
    if (rc == PARSE_OK) {
        if (!imgs || n < 1 || n > MAX_IMAGES || top_k < -1) abort();
        if (form != V1_ROW && form != V1_COLUMNAR) abort();
        for (int i = 0; i < n; i++)
            if (imgs[i].data != imgs[i].own || (imgs[i].len && !imgs[i].data)) abort();
        float probs[MAX_IMAGES * CLASSES];
        for (int i = 0; i < n * CLASSES; i++) probs[i] = (float)((i * 7) % CLASSES) / CLASSES;
        static const char *const labels[CLASSES] = {"a", "b\"q", "c\\", "\x01", NULL};
        sbuf b;
        sbuf_init(&b, 1 << 20);
        if (v1_format(&b, "m\"odel", 1, labels, CLASSES, probs, n, top_k, form) == 0 &&
            (b.len == 0 || b.p[b.len - 1] != '\n'))
            abort();
        sbuf_free(&b);
    } else {
        if (imgs || n != 0 || !err[0]) abort();
    }
    blobs_free(imgs, n > 0 ? n : 0);
    /* The base64 decoder on its own, over the raw input. */
    unsigned char *out = malloc(b64_decoded_max(size));
    size_t olen = 0;
    if (out && b64_decode((const char *)data, size, out, &olen) == 0 &&
        olen > b64_decoded_max(size))
        abort();
    free(out);
    return 0;
}
