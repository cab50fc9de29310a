/* repository.c - see repository.h. */
#include "server/repository.h"

#include <cJSON.h>
#include <stdatomic.h>

#include "server/sbuf.h"
#include "server/server.h"

int repository_index(request *r)
{
    server *s = r->s;
    int ready_only = 0;
    if (r->len) {
        cJSON *o = cJSON_ParseWithLength((const char *)r->body, r->len);
        const cJSON *rd = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "ready") : NULL;
        int ok =
            cJSON_IsObject(o) && (!rd || cJSON_IsBool(rd)) && cJSON_GetArraySize(o) == (rd ? 1 : 0);
        ready_only = ok && cJSON_IsTrue(rd);
        cJSON_Delete(o);
        if (!ok) return http_send_error(r, 400, "body: expected {} or {\"ready\": true|false}");
    }
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_puts(&b, "[");
    int ns = atomic_load_explicit(&s->nslots, memory_order_acquire), first = 1;
    for (int i = 0; i < ns; i++) {
        if (!atomic_load(&s->slots[i].listed)) continue;
        long long v[VERSIONS_MAX];
        int nv = server_versions(s, i, v);
        for (int k = 0; k < nv; k++) {
            sbuf_puts(&b, first ? "{\"name\":" : ",{\"name\":");
            first = 0;
            sbuf_json_str(&b, s->slots[i].name);
            sbuf_printf(&b, ",\"version\":\"%lld\",\"state\":\"READY\"}", v[k] ? v[k] : 1);
        }
        if (nv || ready_only) continue;
        char err[SRV_ERR_MAX];
        server_last_error(s, i, err, sizeof err);
        sbuf_puts(&b, first ? "{\"name\":" : ",{\"name\":");
        first = 0;
        sbuf_json_str(&b, s->slots[i].name);
        sbuf_puts(&b, ",\"state\":\"UNAVAILABLE\",\"reason\":");
        sbuf_json_str(&b, err[0] ? err : "loading");
        sbuf_puts(&b, "}");
    }
    sbuf_puts(&b, "]\n");
    return http_send_json(r, 200, &b);
}
