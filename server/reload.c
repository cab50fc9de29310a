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

/* Do o and c (their threads_per_worker automatic as o_auto, c_auto say) set a model up the
 * same way, the file aside? Automatic thread counts are not compared: adding a model must
 * not reload every other one. */
static int settings_same(const model_cfg *o, int o_auto, const model_cfg *c, int c_auto)
{
    if (o_auto != c_auto || (!c_auto && c->threads_per_worker != o->threads_per_worker)) return 0;
    return !strcmp(o->labels, c->labels) && o->pre_set == c->pre_set &&
           !memcmp(&o->pre, &c->pre, sizeof o->pre) && o->max_batch_size == c->max_batch_size &&
           o->max_queue_delay_us == c->max_queue_delay_us &&
           o->max_queue_size == c->max_queue_size &&
           o->request_timeout_ms == c->request_timeout_ms && o->workers == c->workers;
}

/* Is the loaded instance m what c (tpw_auto as reload_size_models said) asks for? */
static int model_same(const srv_model *m, const model_cfg *c, int tpw_auto)
{
    struct stat st;
    if (stat(c->path, &st) || (long long)st.st_size != m->file_size ||
        (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != m->file_mtime_ns)
        return 0;
    return !strcmp(m->cfg->path, c->path) && settings_same(m->cfg, m->tpw_auto, c, tpw_auto);
}

/* Are two configuration entries of a model the same? What is on disk is not looked at. */
static int entry_same(const model_cfg *o, int o_auto, const model_cfg *c, int c_auto)
{
    return !strcmp(o->path, c->path) && !strcmp(o->version_policy, c->version_policy) &&
           settings_same(o, o_auto, c, c_auto);
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
    s->slots[slot].conf = *mc; /* what a reload compares an unloaded model's entry with */
    s->slots[slot].conf_auto = tpw_auto;
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
    int added = 0, replaced = 0, kept = 0, failed = 0, removed = 0, unloaded = 0;
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
        if (listed && server_unloaded(s, slot)) {
            if (entry_same(&s->slots[slot].conf, s->slots[slot].conf_auto, mc, autos[i])) {
                unloaded++; /* stays so until a load, or until its entry changes */
                continue;
            }
            log_msg(&s->log, LOG_INFO,
                    "reload: model %s: its configuration changed since it was unloaded: "
                    "loading it again",
                    mc->name);
            server_set_unloaded(s, slot, 0);
        }
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
        server_set_unloaded(s, i, 0); /* added back later, it is loaded as a new model */
        metrics_model_gone(s->met, i);
        log_msg(&s->log, LOG_INFO, "reload: model %s removed", s->slots[i].name);
        removed++;
    }
    log_msg(&s->log, failed ? LOG_WARN : LOG_INFO,
            "reload done: %d added, %d replaced, %d unchanged, %d removed, %d failed, %d kept "
            "unloaded",
            added, replaced, kept, removed, failed, unloaded);
out:
    free(nc);
}

/* ---- loads and unloads asked over HTTP (repository.h) ---- */

/* The named model's entry of the configuration as it reads now, applied as a reload applies
 * an entry, to that model alone. */
static void op_load(server *s, srv_op *op, int argc, char **argv, int cpus, reload_load_fn load)
{
    char err[SRV_ERR_MAX];
    config_opts o;
    int autos[CFG_MAX_MODELS], changed = 0, i = 0;
    config *nc = calloc(1, sizeof *nc);
    op->result = SRV_OP_EFAILED;
    log_msg(&s->log, LOG_INFO, "repository: loading model %s (the configuration read again)",
            op->name);
    if (!nc) {
        snprintf(op->err, sizeof op->err, "out of memory");
        goto out;
    }
    if (config_load(argc, argv, environ, nc, &o, err, sizeof err)) {
        snprintf(op->err, sizeof op->err, "configuration: %.900s; nothing changed", err);
        goto out;
    }
    reload_size_models(nc, cpus, autos);
    while (i < nc->nmodels && strcmp(nc->models[i].name, op->name)) i++;
    if (i == nc->nmodels) {
        op->result = SRV_OP_ENOMODEL;
        snprintf(op->err, sizeof op->err, "model %s is not in the configuration", op->name);
        goto out;
    }
    int slot = server_slot(s, op->name);
    if (slot < 0) {
        snprintf(op->err, sizeof op->err, "model %s: no room (at most %d model names)", op->name,
                 CFG_MAX_MODELS);
        goto out;
    }
    server_set_unloaded(s, slot, 0); /* asked for: served from now on, or failing to */
    if (reload_model(s, slot, &nc->models[i], autos[i], load, &changed, err, sizeof err)) {
        snprintf(op->err, sizeof op->err, "%s", err);
        goto out;
    }
    op->result = SRV_OP_OK;
    log_msg(&s->log, LOG_INFO, "repository: model %s: %d version(s) loaded, the others unchanged",
            op->name, changed);
out:
    if (op->result != SRV_OP_OK)
        log_msg(&s->log, LOG_ERROR, "repository: load of model %s: %s", op->name, op->err);
    free(nc);
}

/* Stop serving the named model: nothing is loaded, so this is quick. */
static void op_unload(server *s, srv_op *op)
{
    int slot = server_find(s, op->name, strlen(op->name));
    if (slot < 0) {
        op->result = SRV_OP_ENOMODEL;
        snprintf(op->err, sizeof op->err, "no such model");
        return;
    }
    op->result = SRV_OP_OK;
    if (server_unloaded(s, slot)) return;
    server_set_unloaded(s, slot, 1);
    metrics_model_gone(s->met, slot);
    log_msg(&s->log, LOG_INFO,
            "repository: model %s unloaded (requests already admitted finish on it)", op->name);
}

int reload_op(server *s, int argc, char **argv, int cpus, reload_load_fn load)
{
    int more;
    srv_op *op = server_op_take(s, &more);
    if (!op) return 0;
    if (op->kind == SRV_OP_LOAD)
        op_load(s, op, argc, argv, cpus, load);
    else
        op_unload(s, op);
    op->done(op); /* the op is its owner's again */
    return more;
}

void reload_ops_refuse(server *s)
{
    srv_op *next;
    for (srv_op *op = server_ops_close(s); op; op = next) {
        next = op->next;
        op->result = SRV_OP_ESHUTDOWN;
        snprintf(op->err, sizeof op->err, "server is shutting down");
        op->done(op);
    }
}
