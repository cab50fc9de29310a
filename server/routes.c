/* routes.c - the route table (see routes.h): which path and method reach which handler.
 *
 * Rows are tried in order; the exact paths come first, so "/v1/models" is the listing and
 * "/v1/models/{name}" a model. A path that names a model matches its row whether or not
 * the model is served: the method is checked first (405), then the name (404). The V2 rows
 * of `versioned` take "/versions/{v}" after the name; an unknown version is a 404 too.
 */
#include "server/routes.h"

#include <string.h>

#include "server/info.h"
#include "server/infer.h"
#include "server/num.h"
#include "server/page.h"
#include "server/repository.h"

static const route table[] = {
    {"/", NULL, NULL, "GET", "page", NULL, page_index, NULL},
    {"/ui/app.js", NULL, NULL, "GET", "page", NULL, page_js, NULL},
    {"/ui/app.css", NULL, NULL, "GET", "page", NULL, page_css, NULL},
    {"/openapi.yaml", NULL, NULL, "GET", "openapi", NULL, page_openapi, NULL},
    {"/healthz", NULL, NULL, "GET", "healthz", NULL, info_healthz, NULL},
    {"/readyz", NULL, NULL, "GET", "readyz", NULL, info_readyz, NULL},
    {"/metrics", NULL, NULL, "GET", "metrics", NULL, info_metrics, NULL},
    {"/v1/models", NULL, NULL, "GET", "v1_models", NULL, info_v1_models, NULL},
    {"/v2", NULL, NULL, "GET", "v2_server", NULL, info_v2_server, NULL},
    {"/v2/health/live", NULL, NULL, "GET", "v2_live", NULL, info_v2_live, NULL},
    {"/v2/health/ready", NULL, NULL, "GET", "v2_ready", NULL, info_v2_ready, NULL},
    /* only with repository_api (routes_match); "admin_": auth_level asks the admin token */
    {"/v2/repository/index", NULL, NULL, "POST", "admin_repository_index", NULL, repository_index,
     NULL},
    /* The name need not be served (a load adds it): routes_match checks only its spelling. */
    {"/v2/repository/models/", "/load", "/", "POST", "admin_repository_load", repository_admit,
     repository_load, repository_finish},
    {"/v2/repository/models/", "/unload", "/", "POST", "admin_repository_unload", repository_admit,
     repository_unload, repository_finish},
    /* The name is what precedes the last ":predict", whatever it holds. */
    {"/v1/models/", ":predict", "", "POST", "v1_predict", infer_admit_v1, infer_v1, infer_finish},
    {"/v1/models/", "", "/:", "GET", "v1_model", NULL, info_v1_model, NULL},
    {"/v1/models/", "/metadata", "/:", "GET", "v1_metadata", NULL, info_v1_metadata, NULL},
    {"/v2/models/", "", "/", "GET", "v2_model", NULL, info_v2_model, NULL},
    {"/v2/models/", "/ready", "/", "GET", "v2_model_ready", NULL, info_v2_model_ready, NULL},
    {"/v2/models/", "/infer", "/", "POST", "v2_infer", infer_admit_v2, infer_v2, infer_finish},
};

/* The versioned paths: "/versions/{v}" sits between the model's name and the suffix (V2, and
 * TF Serving's "/v1/models/{m}/versions/{v}[:predict|/metadata]"). */
static const route versioned[] = {
    {"/v1/models/", ":predict", "/:", "POST", "v1_predict", infer_admit_v1, infer_v1, infer_finish},
    {"/v1/models/", "", "/:", "GET", "v1_model", NULL, info_v1_model, NULL},
    {"/v1/models/", "/metadata", "/:", "GET", "v1_metadata", NULL, info_v1_metadata, NULL},
    {"/v2/models/", "", "/", "GET", "v2_model", NULL, info_v2_model, NULL},
    {"/v2/models/", "/ready", "/", "GET", "v2_model_ready", NULL, info_v2_model_ready, NULL},
    {"/v2/models/", "/infer", "/", "POST", "v2_infer", infer_admit_v2, infer_v2, infer_finish},
};

/* Does url follow the versioned rt: prefix, name, "/versions/", version, suffix? */
static int follows_versioned(const route *rt, const char *url, const char **name, size_t *n,
                             const char **ver, size_t *vn)
{
    static const char mid[] = "/versions/";
    size_t lp = strlen(rt->prefix);
    if (strncmp(url, rt->prefix, lp)) return 0;
    *name = url + lp;
    *n = strcspn(*name, rt->name_stop);
    if (strncmp(*name + *n, mid, sizeof mid - 1)) return 0;
    *ver = *name + *n + sizeof mid - 1;
    *vn = strcspn(*ver, "/:");
    return *vn > 0 && !strcmp(*ver + *vn, rt->suffix);
}

/* Does url follow rt? Then the model's name, if the route has one, is name[0, n). */
static int follows(const route *rt, const char *url, const char **name, size_t *n)
{
    if (!rt->suffix) return !strcmp(url, rt->prefix);
    size_t lp = strlen(rt->prefix), ls = strlen(rt->suffix), lu = strlen(url);
    if (strncmp(url, rt->prefix, lp) || lu < lp + ls || strcmp(url + lu - ls, rt->suffix)) return 0;
    *name = url + lp;
    *n = lu - lp - ls;
    return strcspn(*name, rt->name_stop) >= *n;
}

/* The version ver[0, vn) names, if the model serves it: its number; else 0. */
static long long model_has_version(server *s, int idx, const char *ver, size_t vn)
{
    long long v, have[VERSIONS_MAX];
    /* spelled as the version folders are: no sign, no leading zero ("01" is not "1") */
    if (ver[0] < '1' || ver[0] > '9' || num_parse_ll_n(ver, vn, 1, 1000000000000LL, &v)) return 0;
    int n = server_versions(s, idx, have);
    for (int i = 0; i < n; i++)
        if (have[i] == v) return v;
    return 0;
}

/* The model repository routes: only with repository_api. */
static int repository_route(const route *rt)
{
    return !strncmp(rt->endpoint, "admin_repository_", 17);
}

/* Is the model on rt unseen because it is unloaded (repository.h)? Its state is still told
 * where it is asked for: its V2 ready probe and its v1 status. */
static int unloaded_hides(server *s, int idx, const route *rt)
{
    return idx >= 0 && server_unloaded(s, idx) && strcmp(rt->endpoint, "v2_model_ready") &&
           strcmp(rt->endpoint, "v1_model");
}

const route *routes_match(server *s, const char *url, int *model_idx, int *unknown_model,
                          long long *version)
{
    *model_idx = -1;
    *unknown_model = 0;
    *version = 0;
    const char *name = NULL, *ver = NULL;
    size_t n = 0, vn = 0;
    /* first: the unversioned V1 predict row would take "m/versions/2" for a name */
    for (size_t i = 0; i < sizeof versioned / sizeof versioned[0]; i++) {
        if (!follows_versioned(&versioned[i], url, &name, &n, &ver, &vn)) continue;
        *model_idx = server_find(s, name, n);
        *unknown_model = *model_idx < 0 ? 1 : unloaded_hides(s, *model_idx, &versioned[i]) ? 3 : 0;
        if (!*unknown_model && !(*version = model_has_version(s, *model_idx, ver, vn))) {
            *model_idx = -1;
            *unknown_model = 2;
        }
        return &versioned[i];
    }
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (!follows(&table[i], url, &name, &n)) continue;
        if (repository_route(&table[i]) && !s->cfg.repository_api) continue;
        if (table[i].suffix) {
            *model_idx = server_find(s, name, n);
            *unknown_model = *model_idx < 0 ? 1 : unloaded_hides(s, *model_idx, &table[i]) ? 3 : 0;
        }
        if (table[i].suffix && repository_route(&table[i])) /* a load may name a new model */
            *unknown_model = !config_name_ok(name, n);
        return &table[i];
    }
    return NULL;
}

/* v1 predict takes PUT as a second name for POST: `curl -T image.jpg URL` uploads with PUT,
 * as TorchServe's examples type it. */
static int takes_put(const route *rt)
{
    return !strcmp(rt->endpoint, "v1_predict");
}

int routes_method_ok(const route *rt, const char *method)
{
    if (!strcmp(method, "PUT") && takes_put(rt)) return 1;
    return !strcmp(!strcmp(method, "HEAD") ? "GET" : method, rt->method);
}

int routes_body_optional(const route *rt)
{
    return repository_route(rt) && rt->suffix; /* Triton's load and unload: "may be empty" */
}

const char *routes_allow(const route *rt)
{
    if (takes_put(rt)) return "POST, PUT";
    return !strcmp(rt->method, "GET") ? "GET, HEAD" : rt->method;
}
