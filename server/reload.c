/* reload.c - see reload.h. Main thread only: the slots' names and the loading are its own;
 * what HTTP threads see changes only through server_publish, under server.mu. */
#include "server/reload.h"

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
        srv_model *cur = server_acquire(s, slot);
        int listed = atomic_load(&s->slots[slot].listed);
        int same = cur && listed && model_same(cur, mc, autos[i]);
        server_release(s, cur);
        if (same) {
            kept++;
            continue;
        }
        srv_model *m = NULL;
        if (load(s, slot, mc, autos[i], &m, err, sizeof err)) {
            log_msg(&s->log, LOG_ERROR, "reload: %s (%s)", err,
                    cur && listed ? "the instance loaded before keeps serving" : "not served");
            server_publish(s, slot, NULL, 1, err);
            failed++;
            continue;
        }
        server_publish(s, slot, m, 1, "");
        log_msg(&s->log, LOG_INFO, "reload: model %s %s", mc->name,
                cur && listed ? "replaced" : "added");
        if (cur && listed)
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
