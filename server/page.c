/* page.c - see page.h. */
#include "server/page.h"

#include <stddef.h>

/* build/web/assets.c (tools/embed_web.sh): each file's bytes and length. */
extern const unsigned char web_index_html[], web_app_js[], web_app_css[], web_openapi_yaml[];
extern const size_t web_index_html_len, web_app_js_len, web_app_css_len, web_openapi_yaml_len;

static int send_bytes(request *r, const unsigned char *p, size_t n, const char *ctype)
{
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_add(&b, p, n);
    return http_send(r, 200, &b, ctype);
}

static int send_asset(request *r, const unsigned char *p, size_t n, const char *ctype)
{
    if (!r->s->cfg.ui) return http_send_error(r, 404, "the page is disabled (ui: false)");
    r->csp = PAGE_CSP;
    return send_bytes(r, p, n, ctype);
}

int page_index(request *r)
{
    return send_asset(r, web_index_html, web_index_html_len, "text/html; charset=utf-8");
}

int page_js(request *r)
{
    return send_asset(r, web_app_js, web_app_js_len, "text/javascript; charset=utf-8");
}

int page_css(request *r)
{
    return send_asset(r, web_app_css, web_app_css_len, "text/css; charset=utf-8");
}

/* Not part of the page, so `ui: false` leaves it on: clients and tools generate code from it.
 * application/yaml is YAML's registered media type (RFC 9512), which takes no charset. */
int page_openapi(request *r)
{
    return send_bytes(r, web_openapi_yaml, web_openapi_yaml_len, "application/yaml");
}
