/* reload.c - see reload.h. Main thread only: the slots' names and the loading are its own;
 * what HTTP threads see changes only through server_publish, under server.mu. */
#include "server/reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern char **environ;

void reload_size_models(config *c, int cpus, int *autos)
{
    long long workers = 0;
    for (int i = 0; i < c->nmodels; i++) workers += c->models[i].workers;
    for (int i = 0; i < c->nmodels; i++) {
        autos[i] = c->models[i].threads_per_worker == 0;
        if (autos[i]) c->models[i].threads_per_worker = cpus / workers > 0 ? cpus / workers : 1;
    }
}

/* Is the loaded instance m what c (tpw_auto as reload_size_models said) asks for? Automatic
 * thread counts are not compared: adding a model must not reload every other one. */
static int model_same(const srv_model *m, const model_cfg *c, int tpw_auto)
{
    const model_cfg *o = m->cfg;
    struct stat st;
    if (stat(c->path, &st) || (long long)st.st_size != m->file_size ||
        (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != m->file_mtime_ns)
        return 0;
    if (tpw_auto != m->tpw_auto || (!tpw_auto && c->threads_per_worker != o->threads_per_worker))
        return 0;
    return !strcmp(o->path, c->path) && !strcmp(o->labels, c->labels) &&
           !memcmp(&o->pre, &c->pre, sizeof o->pre) && o->max_batch_size == c->max_batch_size &&
           o->max_queue_delay_us == c->max_queue_delay_us &&
           o->max_queue_size == c->max_queue_size &&
           o->request_timeout_ms == c->request_timeout_ms && o->workers == c->workers;
}

/* Log every server-level setting that differs: it keeps its value until a restart. */
static void note_ignored(server *s, const config *n)
{
    const config *o = &s->cfg;
#define RELOAD_IGNORED(f)                                                                          \
    if (o->f != n->f) log_msg(&s->log, LOG_WARN, "reload: %s changed, ignored until a restart", #f)
    if (strcmp(o->listen_address, n->listen_address))
        log_msg(&s->log, LOG_WARN, "reload: listen_address changed, ignored until a restart");
    RELOAD_IGNORED(port);
    RELOAD_IGNORED(reuse_port);
    RELOAD_IGNORED(http_threads);
    RELOAD_IGNORED(decode_threads);
    RELOAD_IGNORED(decode_queue_size);
    RELOAD_IGNORED(max_connections);
    RELOAD_IGNORED(connection_timeout_s);
    RELOAD_IGNORED(max_body_bytes);
    RELOAD_IGNORED(max_image_pixels);
    RELOAD_IGNORED(max_images_per_request);
    RELOAD_IGNORED(max_header_bytes);
    RELOAD_IGNORED(max_url_bytes);
    RELOAD_IGNORED(drain_timeout_ms);
    RELOAD_IGNORED(log_level);
    RELOAD_IGNORED(log_format);
    RELOAD_IGNORED(metrics);
#undef RELOAD_IGNORED
}

static int configured(const config *c, const char *name)
{
    for (int i = 0; i < c->nmodels; i++)
        if (!strcmp(c->models[i].name, name)) return 1;
    return 0;
}

int reload_model(server *s, int slot, const model_cfg *mc, int tpw_auto, reload_load_fn load,
                 int *changed, char *err, size_t errlen)
{
    version_policy vp;
    long long want[VERSIONS_MAX];
    int nw = 0, bad = 0;
    *changed = 0;
    if (versions_policy_parse(mc->version_policy, &vp, err, errlen) ||
        versions_resolve(mc->path, &vp, want, &nw, err, errlen)) {
        char e[SRV_ERR_MAX];
        snprintf(e, sizeof e, "model %s: %s", mc->name, err);
        snprintf(err, errlen, "%s", e);
        server_publish(s, slot, NULL, 1, err); /* whatever served keeps serving */
        return -1;
    }
    /* cfgs is big (a model_cfg each): on the heap, not this thread's stack */
    model_cfg *cfgs = calloc(VERSIONS_MAX, sizeof *cfgs);
    srv_model *held[VERSIONS_MAX], *next[VERSIONS_MAX];
    int nh = 0, nn = 0;
    if (!cfgs) {
        snprintf(err, errlen, "model %s: out of memory", mc->name);
        return -1;
    }
    int listed = atomic_load(&s->slots[slot].listed);
    for (int i = 0; i < nw; i++) {
        model_cfg *c = &cfgs[i];
        *c = *mc;
        c->version = want[i];
        if (versions_file(mc->path, want[i], c->path, sizeof c->path)) {
            snprintf(err, errlen, "model %s: version %lld: path too long", mc->name, want[i]);
            bad = 1;
            continue;
        }
        srv_model *cur = server_acquire_version(s, slot, want[i]);
        if (cur) held[nh++] = cur; /* until published: the reaper cannot take it meanwhile */
        if (cur && listed && model_same(cur, c, tpw_auto)) {
            next[nn++] = cur;
            continue;
        }
        srv_model *m = NULL;
        if (load(s, slot, c, tpw_auto, &m, err, errlen)) {
            log_msg(&s->log, LOG_ERROR, "%s (%s)", err,
                    cur && listed ? "the instance loaded before keeps serving" : "not served");
            if (cur && listed) next[nn++] = cur;
            bad = 1;
            continue;
        }
        next[nn++] = m;
        (*changed)++;
    }
    server_publish_versions(s, slot, next, nn, bad ? err : "");
    if (nn) { /* the info gauge names the version requests without one reach */
        char ver[24];
        snprintf(ver, sizeof ver, "%lld", next[nn - 1]->cfg->version);
        metrics_model_info(s->met, slot, ver, &next[nn - 1]->info);
    }
    for (int i = 0; i < nh; i++) server_release(s, held[i]);
    free(cfgs);
    return bad ? -1 : 0;
}

void reload_run(server *s, int argc, char **argv, int cpus, reload_load_fn load)
{
    char err[600];
    config_opts o;
    int autos[CFG_MAX_MODELS];
    int added = 0, replaced = 0, kept = 0, failed = 0, removed = 0;
    config *nc = calloc(1, sizeof *nc);
    log_msg(&s->log, LOG_INFO, "reload: reading the configuration again (SIGHUP)");
    if (!nc) {
        log_msg(&s->log, LOG_ERROR, "reload: out of memory; nothing changed");
        return;
    }
    if (config_load(argc, argv, environ, nc, &o, err, sizeof err)) {
        log_msg(&s->log, LOG_ERROR, "reload: %s; nothing changed", err);
        goto out;
    }
    note_ignored(s, nc);
    reload_size_models(nc, cpus, autos);
    for (int i = 0; i < nc->nmodels; i++) {
        const model_cfg *mc = &nc->models[i];
        int slot = server_slot(s, mc->name);
        if (slot < 0) {
            log_msg(&s->log, LOG_ERROR, "reload: model %s: no room (at most %d model names)",
                    mc->name, CFG_MAX_MODELS);
            failed++;
            continue;
        }
        int listed = atomic_load(&s->slots[slot].listed);
        srv_model *cur = server_acquire(s, slot);
        int had = cur && listed, changed = 0;
        server_release(s, cur);
        int st = reload_model(s, slot, mc, autos[i], load, &changed, err, sizeof err);
        if (st) {
            log_msg(&s->log, LOG_ERROR, "reload: %s", err);
            failed++;
        } else if (!changed) {
            kept++;
            continue;
        }
        if (!changed) continue;
        log_msg(&s->log, LOG_INFO, "reload: model %s %s", mc->name, had ? "replaced" : "added");
        if (had)
            replaced++;
        else
            added++;
    }
    int ns = atomic_load(&s->nslots);
    for (int i = 0; i < ns; i++) {
        if (!atomic_load(&s->slots[i].listed) || configured(nc, s->slots[i].name)) continue;
        server_publish(s, i, NULL, 0, "");
        log_msg(&s->log, LOG_INFO, "reload: model %s removed", s->slots[i].name);
        removed++;
    }
    log_msg(&s->log, failed ? LOG_WARN : LOG_INFO,
            "reload done: %d added, %d replaced, %d unchanged, %d removed, %d failed", added,
            replaced, kept, removed, failed);
out:
    free(nc);
}
