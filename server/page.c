/* page.c - see page.h. */
#include "server/page.h"

#include <stddef.h>

/* build/web/assets.c (tools/embed_web.py): each file's bytes and length. */
extern const unsigned char web_index_html[], web_app_js[], web_app_css[];
extern const size_t web_index_html_len, web_app_js_len, web_app_css_len;

static int send_asset(request *r, const unsigned char *p, size_t n, const char *ctype)
{
    if (!r->s->cfg.ui) return http_send_error(r, 404, "the page is disabled (ui: false)");
    sbuf b;
    sbuf_init(&b, HTTP_RESPONSE_MAX);
    sbuf_add(&b, p, n);
    r->csp = PAGE_CSP;
    return http_send(r, 200, &b, ctype);
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
