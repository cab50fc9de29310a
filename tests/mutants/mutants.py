"""The list of deliberate breaks `make mutants` applies one at a time (tools/mutants.py).

Each entry: id, file, the exact original text (must occur exactly once in the file), the
replacement, the tests that should catch it, and why it is a plausible bug.  Tests are
"unit:<binary>" (a cmocka binary from tests/unit/, run whole) or "py:<pytest args>" (node
ids or a file plus -k).  compile=True marks a break meant to be caught by the compiler
(-Wall -Wextra -Werror): a build failure then counts as killed; for every other entry a
build failure is reported as STALE.  When a file changes under a pattern, the entry is
reported STALE (pattern not found): update the pattern, do not delete the entry.
"""

M = []


def mutant(id, file, orig, repl, tests, why, compile=False):
    M.append(dict(id=id, file=file, orig=orig, repl=repl, tests=tests, why=why, compile=compile))


# ---- server ----
mutant("http-cl-ge", "server/http.c",
       "num_parse_ll(cl, 0, s->cfg.max_body_bytes, &n)",
       "num_parse_ll(cl, 0, s->cfg.max_body_bytes - 1, &n)",
       ["py:tests/integration/test_limits.py::test_body_content_length_at_limit_and_one_over"],
       "Content-Length exactly at max_body_bytes refused (>= instead of >)")
mutant("http-chunked-ge", "server/http.c",
       "if (r->len + n > max) {",
       "if (r->len + n >= max) {",
       ["py:tests/integration/test_limits.py::test_body_chunked_at_limit_and_one_over"],
       "a chunked body that reaches max_body_bytes exactly dropped (>= instead of >)")
mutant("admit-v2-decode-queue", "server/infer.c",
       "return admit(r, 0, why);",
       "return admit(r, 1, why);",
       ["py:tests/integration/test_metrics_values.py::test_decode_queue_depth_exact_and_bounded"],
       "a V2 FP32 request, never decoded, refused at the door because the decode queue is full")
mutant("metrics-requests-total", "server/metrics.c",
       "if (s) s->n++;",
       "if (s) (void)s->n;",
       ["unit:test_metrics",
        "py:tests/integration/test_metrics_values.py::test_requests_total_by_model_endpoint_code"],
       "xbnserve_requests_total never incremented")
mutant("b64-three-pad", "server/api/b64.c",
       "(pad && (rem == 0 || pad != 4 - rem))",
       "(pad && (rem == 0 || (pad != 4 - rem && pad != 3)))",
       ["unit:test_parsers", "py:tests/integration/test_strict_parsers.py -k b64_padding"],
       "base64 ending in three '=' accepted")
mutant("topk-never-last", "server/api/v1.c",
       "for (int j = i + 1; j < classes; j++) {",
       "for (int j = i + 1; j < classes - 1; j++) {",
       ["unit:test_parsers", "py:tests/integration/test_answers.py::test_top_k_selection_and_order"],
       "top-k selection never considers the last class")
mutant("labels-shifted", "server/api/v1.c",
       "sbuf_json_str(b, labels[idx[j]]);",
       "sbuf_json_str(b, labels[(idx[j] + 1) % classes]);",
       ["unit:test_parsers", "py:tests/integration/test_answers.py -k labels"],
       "each class answered with its neighbour's label")
mutant("columnar-key-one-image", "server/api/v1.c",
       'form == V1_COLUMNAR ? "outputs" : "predictions"',
       'form == V1_COLUMNAR && n > 1 ? "outputs" : "predictions"',
       ["unit:test_parsers", "py:tests/integration/test_v1_compat.py -k columnar_equals_row"],
       "a columnar request of one image answered with the row form's key")
mutant("both-forms-taken", "server/api/v1.c",
       "if (rows && cols) {",
       "if (rows && cols && !rows->child) {",
       ["unit:test_parsers", "py:tests/integration/test_v1_compat.py -k columnar_errors"],
       "a body with both \"instances\" and \"inputs\" silently read as one of them")
mutant("model-names-reversed", "server/info.c",
       "sbuf_json_str(&b, s->slots[listed[i]].name);",
       "sbuf_json_str(&b, s->slots[listed[n - 1 - i]].name);",
       ["py:tests/integration/test_v1_compat.py -k names_then_details"],
       "GET /v1/models lists the names in another order than their details")
mutant("batcher-max-batch", "server/batcher.c",
       "int k = b->count < c->max_batch ? (int)b->count : c->max_batch;",
       "int k = b->count < c->max_batch ? (int)b->count : c->max_batch - 1;",
       ["unit:test_batcher",
        "py:tests/integration/test_limits.py::test_batches_reach_max_batch_size_and_never_exceed_it"],
       "a full batch takes max_batch - 1 images (off by one)")
mutant("batcher-full-waits", "server/batcher.c",
       "b->count > 0 && b->count < c->max_batch && !b->stop",
       "b->count > 0 && b->count <= c->max_batch && !b->stop",
       ["unit:test_batcher", "py:tests/integration/test_limits.py::test_queue_size_exact"],
       "a full batch still waits max_queue_delay_us for one image more (<= instead of <)")
mutant("queue-depth-gt", "server/infer.c",
       "server_queue_depth(s, m) >= m->cfg->max_queue_size",
       "server_queue_depth(s, m) > m->cfg->max_queue_size",
       ["py:tests/integration/test_limits.py -k queue"],
       "one image more than max_queue_size admitted (> instead of >=)")
mutant("queue-nimg-ge", "server/infer.c",
       "if (nimg > m->cfg->max_queue_size) {",
       "if (nimg >= m->cfg->max_queue_size) {",
       ["py:tests/integration/test_limits.py -k queue"],
       "a request of exactly max_queue_size images refused")
mutant("json-escape-backslash", "server/sbuf.c",
       "if (*p == '\"' || *p == '\\\\') {",
       "if (*p == '\"') {",
       ["unit:test_parsers", "py:tests/integration/test_v2_protocol.py::test_id_not_utf8_gives_valid_json",
        "py:tests/integration/test_security.py -k escapes"],
       "a backslash in an echoed string (V2 id, model name) not escaped: invalid JSON")
mutant("request-id-64", "server/http.c",
       "strlen(rid) < 64;",
       "strlen(rid) <= 64;",
       ["py:tests/integration/test_headers.py -k request_id"],
       "a 64-byte X-Request-Id echoed (limit is 63, r->id would truncate it)")
mutant("request-id-space", "server/http.c",
       "*p == '-' || *p == '_' || *p == '.';",
       "*p == '-' || *p == '_' || *p == '.' || *p == ' ';",
       ["py:tests/integration/test_headers.py -k request_id"],
       "an X-Request-Id with a space (not [A-Za-z0-9._-]) echoed")
mutant("retry-after-missing", "server/http.c",
       "if (code == 503) MHD_add_response_header(resp, \"Retry-After\", \"1\");",
       "if (code == 503 && r->len > 1) MHD_add_response_header(resp, \"Retry-After\", \"1\");",
       ["py:tests/integration/test_headers.py::test_retry_after_on_every_503"],
       "Retry-After only on some 503s (those refused after a body)")
mutant("drain-timeout-units", "server/serve.c",
       "long long until = t0 + s->cfg.drain_timeout_ms * 1000000LL;",
       "long long until = t0 + s->cfg.drain_timeout_ms * 1000LL;",
       ["py:tests/integration/test_http.py -k 'sigterm_drains or drain_answers'",
        "py:tests/integration/test_faults.py::test_sigterm_under_load_answers_every_accepted_request"],
       "drain_timeout_ms read as microseconds: SIGTERM cancels in-flight requests at once")
mutant("fp32-range-inf", "server/api/json_scan.c",
       "if (!isfinite(v)) return -1;",
       "if (isnan(v)) return -1;",
       ["unit:test_parsers", "py:tests/integration/test_security.py::test_v2_fp32_past_float_range"],
       "an FP32 value past FLT_MAX accepted as infinity")
mutant("auth-prefix", "server/auth.c",
       "volatile unsigned char diff = glen != tlen;",
       "volatile unsigned char diff = glen < tlen;",
       ["py:tests/integration/test_security.py -k token"],
       "a bearer token with extra bytes after the real one accepted")
mutant("auth-admin-fallback", "server/auth.c",
       "if (!a->admin && a->user) return AUTH_NO_ADMIN_TOKEN;\n        token = a->admin, tlen = a->admin_len;",
       "if (a->admin) token = a->admin, tlen = a->admin_len;",
       ["py:tests/integration/test_security.py -k admin_routes"],
       "with a user token and no admin token, the user token opens the repository routes")
mutant("url-limit-ge", "server/http.c",
       "if (r->url_bytes > (size_t)s->cfg.max_url_bytes)",
       "if (r->url_bytes >= (size_t)s->cfg.max_url_bytes)",
       ["py:tests/integration/test_limits.py -k url"],
       "a URL exactly max_url_bytes long refused with 414")
mutant("header-limit-ge", "server/http.c",
       "if (header_block_bytes(r) > (size_t)s->cfg.max_header_bytes) {",
       "if (header_block_bytes(r) >= (size_t)s->cfg.max_header_bytes) {",
       ["py:tests/integration/test_limits.py -k header_block"],
       "a header block of exactly max_header_bytes refused with 431")
mutant("pool-without-query", "server/http.c",
       "MHD_RECORD_BYTES * (u + (h - u) / MIN_HEADER_LINE)",
       "MHD_RECORD_BYTES * (h / MIN_HEADER_LINE + 0 * u)",
       ["py:tests/integration/test_limits.py -k shortest_lines"],
       "libmicrohttpd's pool sized for header lines only, not for the query's arguments too: "
       "a block at the limit with a query of empty arguments closed unanswered")
mutant("multipart-boundary-prefix", "server/api/multipart.c",
       "if (len >= dn - 2 && !memcmp(body, delim + 2, dn - 2)) return body + dn - 2;",
       "if (len >= dn - 2 && !memcmp(body, delim + 2, dn - 3)) return body + dn - 2;",
       ["unit:test_parsers", "py:tests/integration/test_strict_parsers.py -k multipart"],
       "the body's first delimiter matched without its boundary's last byte")
mutant("metrics-added-model-unnamed", "server/server.c",
       "if (metrics_model_add(s->met, ns, name))",
       "if (ns >= s->nmodels || metrics_model_add(s->met, ns, name))",
       ["py:tests/integration/test_metrics_reload.py::test_sighup_added_model_counted_removed_and_back"],
       "a model added after the start (SIGHUP, repository load) served without per-model series")
mutant("metrics-removed-still-listed", "server/info.c",
       "st[i].listed = atomic_load(&s->slots[i].listed);",
       "st[i].listed = 1;",
       ["py:tests/integration/test_metrics_reload.py::test_sighup_added_model_counted_removed_and_back"],
       "a model removed by a reload keeps its ready, queue depth and load time series")

# ---- config ----
mutant("preprocess-unknown-key", "image/preprocess.c",
       "if (k == NKEYS) {",
       "if (k == NKEYS) continue;\n        if (k == NKEYS) {",
       ["unit:test_preprocess",
        "py:tests/integration/test_strict_parsers.py -k 'preprocess_key or preprocess_unknown'"],
       "an unknown key inside a model's preprocess object silently accepted")
mutant("config-model-unknown-key", "server/config.c",
       "if (!s) {\n            snprintf(err, errlen, \"%s: unknown key\", where);",
       "if (!s) continue;\n        if (!s) {\n            snprintf(err, errlen, \"%s: unknown key\", where);",
       ["unit:test_config", "py:tests/integration/test_strict_parsers.py -k config_unknown_key"],
       "a misspelt key in a model's config object (max_batch for max_batch_size) ignored")
mutant("config-env-before-models", "server/config.c",
       "apply_models(c, envp, pairs, np, err, errlen) ||\n        apply_env(c, envp, err, errlen) ||",
       "apply_env(c, envp, err, errlen) ||\n        apply_models(c, envp, pairs, np, err, errlen) ||",
       ["unit:test_config", "py:tests/integration/test_strict_parsers.py -k env_preprocess"],
       "XBNSERVE_* per-model settings applied before the model list is settled: lost for the "
       "models of --model and XBNSERVE_MODELS")
mutant("config-range-hi", "server/num.c",
       "if (v < lo || v > hi) return -1;",
       "if (v < lo || v > hi + 1) return -1;",
       ["unit:test_num", "unit:test_config"],
       "a setting one past its maximum accepted")
mutant("preprocess-exif-key-dropped", "image/preprocess.c",
       "{\"exif_orient\", PRE_EXIF, key_exif, \"true or false\"},",
       "",
       [],
       "a key's table entry lost: -Werror=unused-function must stop the build",
       compile=True)

# ---- image ----
mutant("jpeg-coef-budget-ge", "image/jpeg_decode.c",
       "(long long)sizeof(JCOEF) * per_mcu * px > budget * mcu",
       "(long long)sizeof(JCOEF) * per_mcu * px >= budget * mcu",
       ["unit:test_image",
        "py:tests/integration/test_worst_case.py -k jpeg_progressive_444_at_the_coefficient_limit"],
       "a progressive JPEG whose coefficients are exactly the budget refused (>= instead of >)")
mutant("mean-std-order", "image/image.c",
       "float mean = pre->mean[p], std = pre->std[p];",
       "float mean = pre->mean[2 - p], std = pre->std[2 - p];",
       ["unit:test_preprocess", "py:tests/integration/test_images.py -k channel_order_and_normalisation"],
       "mean/std applied in BGR order to RGB planes")
mutant("resize-span-round", "image/resize.c",
       "int lo = (int)(*center - f->support + 0.5);",
       "int lo = (int)(*center - f->support);",
       ["unit:test_image", "py:tests/integration/test_images.py -k matches_pil_torchvision"],
       "resize filter window start truncated instead of rounded (Pillow rounds)")
mutant("crop-half-even", "image/resize.c",
       "return q % 2 == 0 ? q : q + 1;",
       "return q + 1;",
       ["unit:test_image", "py:tests/integration/test_images.py -k matches_pil_torchvision"],
       "center-crop offset rounded half up instead of Python's round-half-even")
mutant("exif-mirror-5", "image/pixmap.c",
       "return o == 2 || o == 3 || o == 7 || o == 8;",
       "return o == 2 || o == 3 || o == 5 || o == 8;",
       ["unit:test_image", "py:tests/integration/test_images.py -k matches_pil_torchvision"],
       "EXIF orientation 5 (transpose) mapped like 7 (transverse)")

# ---- engine ----
mutant("gn-eps", "engine/build.c",
       ".eps = 1e-5f,",
       ".eps = 1e-3f,",
       ["py:tests/integration/test_oracle.py -k predict_matches_torch"],
       "GroupNorm epsilon 1e-3 instead of PyTorch's 1e-5")
mutant("bn-fold-eps-outside", "engine/build.c",
       "scale = f32_at(t->gamma, (size_t)oc) / sqrt((double)vr + b->bn_eps);",
       "scale = f32_at(t->gamma, (size_t)oc) / (sqrt((double)vr) + b->bn_eps);",
       ["py:tests/integration/test_oracle.py -k predict_matches_torch"],
       "BN fold: epsilon added outside the square root")
mutant("bn-eps-keras", "engine/build_mobilenetv2.c",
       "b->bn_eps = keras ? 1e-3f : 1e-5f;",
       "b->bn_eps = 1e-5f;",
       ["py:tests/integration/test_oracle.py -k 'predict_matches_torch and keras'"],
       "Keras MobileNetV2 checkpoints folded with PyTorch's BN epsilon")
mutant("gemm-row-tail", "engine/kernels/gemm_packed.c",
       "for (int r0 = 0, rows; r0 < m; r0 += rows) {\n            rows = tile_height(r0, m, th);\n"
       "            int merged = rows_of(arg, r0, rows, ap);\n            for (int p = p_lo;",
       "for (int r0 = 0, rows; r0 + th <= m; r0 += rows) {\n            rows = tile_height(r0, m, th);\n"
       "            int merged = rows_of(arg, r0, rows, ap);\n            for (int p = p_lo;",
       ["unit:test_kernels"],
       "GEMM (small weights, tiles outside): the last partial tile of rows never computed")
mutant("winograd-tiles-floor", "engine/kernels/winograd.c",
       "return ((h + m - 1) / m) * ((w + m - 1) / m);",
       "return (h / m) * ((w + m - 1) / m);",
       ["unit:test_kernels"],
       "Winograd tile count rounds the height down: the bottom rows of odd sizes missed")
