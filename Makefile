# xbnserve - see README.md. `make` builds build/xbnserve (and the benchmarks build/fmapeak and
# build/ab_inproc); `make test` runs every test.
CC      ?= gcc
PY      := /usr/bin/python3
BUILD   := build
PKGS    := libmicrohttpd gnutls libcjson libjpeg libpng openblas
# The program runs on any x86-64 CPU (ARCHFLAGS, baseline); only the kernel files below are
# built for x86-64-v3 (AVX2 + FMA; their AVX-512 functions by target attribute), and the engine
# runs them only on CPUs that have them (engine/kernels/kernel_table.c, docs/engine.md).
ARCHFLAGS ?= -march=x86-64
KERNEL_ARCHFLAGS := -march=x86-64-v3
CFLAGS  ?= -O3 -g
# `override`: a CFLAGS given on the command line (make asan, make fuzz-build) keeps these.
override CFLAGS += -std=c11 -D_GNU_SOURCE $(ARCHFLAGS) -ffp-contract=off -Wall -Wextra -Wvla -Wshadow -Werror -pthread \
           -MMD -MP -I. $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lm -pthread

# The layers (docs/architecture.md); every include is path-qualified from the top (-I.).
SRC_DIRS := engine engine/kernels image server server/api cli
# engine/kernels/kernels.c is built once per instruction set (kernels_avx2.o, kernels_base.o).
LIB_SRC := $(filter-out cli/main.c engine/kernels/kernels.c,$(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c)))
KERNELS_OBJ := $(BUILD)/engine/kernels/kernels_avx2.o $(BUILD)/engine/kernels/kernels_base.o
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(KERNELS_OBJ) $(BUILD)/web/assets.o
# The try-it page (server/page.h): web/ kept as ordinary files, built in as C arrays; and
# docs/openapi.yaml, served at /openapi.yaml from the one copy the repository keeps.
WEB_SRC := web/index.html web/app.js web/app.css docs/openapi.yaml
TESTS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
C_FILES := $(foreach d,$(SRC_DIRS) tests/unit tests/fuzz,$(wildcard $(d)/*.[ch]))
MODELS  := $(BUILD)/models

.PHONY: FORCE bench bench-ort-configs all deps run test unit pytest asan asan-unit asan-pytest format lint clean models fuzzers fuzz-build \
        fuzz-smoke fuzz container-test check-deps mutants
all: $(BUILD)/xbnserve $(BUILD)/fmapeak $(BUILD)/ab_inproc

deps:
	@scripts/deps.sh all

# Header dependencies come from the compiler (-MMD): build/**/*.d, included at the end.
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Objects also depend on the flags they were built with (a snapshot taken here, before any
# object's own additions): a changed ARCHFLAGS or CFLAGS rebuilds them all instead of linking
# old objects in (AVX2 code left in a baseline binary would die on an older CPU).
BUILD_FLAGS := $(CC) $(CFLAGS)
$(BUILD)/flags.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(BUILD_FLAGS)' | cmp -s - $@ || echo '$(BUILD_FLAGS)' > $@
$(LIB_OBJ) $(BUILD)/cli/main.o: $(BUILD)/flags.stamp

# The kernel files of the AVX2 and AVX-512 tables: built for AVX2 + FMA, the compiler free to
# fuse a*b+c into one FMA (faster and more exact; every sample runs the same code, so batch
# invariance holds). Everything else, kernels_base.o (the BLAS table's) included, is baseline
# and unfused (image code so to match PIL); where the engine's load-time arithmetic wants a
# fused multiply-add it calls fma(), the same bits on every CPU.
KERNEL_OBJ := $(BUILD)/engine/kernels/gemm_packed.o $(BUILD)/engine/kernels/winograd_simd.o \
              $(BUILD)/engine/kernels/kernels_avx2.o
$(KERNEL_OBJ): CFLAGS += $(KERNEL_ARCHFLAGS) -ffp-contract=fast

# kernels.c once per kernel table's instruction set, its functions suffixed (kernels.h).
$(KERNELS_OBJ): $(BUILD)/engine/kernels/kernels_%.o: engine/kernels/kernels.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DKERNELS_ISA=$* -c $< -o $@

# The version xbnserve_build_info reports: `git describe`, or the fallback where there is no
# git checkout (the container build copies no .git; it passes XBN_VERSION instead). The
# stamp changes only when the version does, so metrics.o is rebuilt then and only then.
ifndef XBN_VERSION
XBN_VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo unreleased)
endif
$(BUILD)/version.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(XBN_VERSION)' | cmp -s - $@ || echo '$(XBN_VERSION)' > $@
$(BUILD)/server/metrics.o: $(BUILD)/version.stamp
$(BUILD)/server/metrics.o: override CFLAGS += -DXBN_VERSION='"$(XBN_VERSION)"'
FORCE:
$(BUILD)/web/assets.c: tools/embed_web.sh $(WEB_SRC)
	@mkdir -p $(dir $@)
	tools/embed_web.sh $(WEB_SRC) > $@.tmp && mv $@.tmp $@
$(BUILD)/web/assets.o: $(BUILD)/web/assets.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/xbnserve: $(BUILD)/cli/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# The FMA peak and the per-layer report (bench/fmapeak.c, docs/benchmarks.md): built with the
# program's baseline flags, its peak loops by target attribute as the kernels' AVX-512 ones.
$(BUILD)/fmapeak: bench/fmapeak.c $(LIB_OBJ)
	$(CC) $(CFLAGS) $< $(LIB_OBJ) -o $@ $(LDLIBS)

# A/B of engine builds in one process (bench/ab_inproc.c): it links no engine, it loads the
# builds bench/engine_so.sh makes.
$(BUILD)/ab_inproc: bench/ab_inproc.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ -ldl

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(LIB_OBJ) -o $@ $(LDLIBS) -lcmocka

# Deterministic untrained test models (tools/xbnweights.py init); see docs/model-format.md.
models: $(MODELS)/.stamp
$(MODELS)/.stamp: tools/xbnweights.py tools/xbnmodels.py
	@mkdir -p $(MODELS)
	$(PY) tools/xbnweights.py testset -o $(MODELS)
	@touch $@

# `make run`: install what is missing, build, make a default model if none, serve.
run: deps all
	@scripts/default-models.sh
	$(BUILD)/xbnserve serve --config config/xbnserve.json

unit: $(BUILD)/xbnserve $(TESTS) models
	@set -e; for t in $(TESTS); do echo "== $$t"; XBN_MODELS=$(MODELS) $$t; done

pytest: $(BUILD)/xbnserve models
	XBN_BIN=$(BUILD)/xbnserve XBN_MODELS=$(MODELS) $(PY) -m pytest -q tests/integration

test: deps unit pytest

# `make asan`: everything rebuilt with clang ASan+UBSan (+LSan at exit) into build-asan, then
# the unit tests and the whole pytest suite against build-asan/xbnserve (a sanitizer report or
# a leak makes the daemon exit non-zero, which the tests assert). `make asan-unit` /
# `make asan-pytest` run one half. Models are shared with the normal build.
ASAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_MAKE = $(MAKE) BUILD=build-asan CC=clang CFLAGS="$(ASAN_CFLAGS)" MODELS=$(abspath $(MODELS))
asan:
	$(ASAN_MAKE) unit
	$(ASAN_MAKE) pytest
asan-unit:
	$(ASAN_MAKE) unit
asan-pytest:
	$(ASAN_MAKE) pytest

# ---- fuzzing: libFuzzer drivers in tests/fuzz/ (docs/reliability.md) ----
# `make fuzz-smoke`: a few seconds per driver (CI); `make fuzz FUZZ_SECONDS=600`: the long
# runs, corpus kept in build-fuzz/corpus/. The library is rebuilt with coverage + ASan/UBSan.
FUZZ_CFLAGS := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=all
FUZZ_SECONDS ?= 600
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $< $(LIB_OBJ) -o $@ $(LDLIBS)
fuzzers: $(FUZZERS)
fuzz-build:
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="$(FUZZ_CFLAGS)" fuzzers
fuzz-smoke: fuzz-build models
	tests/fuzz/run.sh smoke 4
fuzz: fuzz-build models
	tests/fuzz/run.sh long $(FUZZ_SECONDS)

# ---- mutation testing: tools/mutants.py, the list in tests/mutants/mutants.py ----
# Each deliberate break applied alone to a scratch copy (build/mutants/src), rebuilt, and its
# named tests run: killed / SURVIVED / STALE per mutant, non-zero exit unless all are killed.
# Not part of `make test` (20-30 min on 2 cores). MUTANTS_ARGS="--only ID,ID" runs a few.
mutants: models
	$(PY) tools/mutants.py $(MUTANTS_ARGS)

# ---- container: build docker/Dockerfile with podman and run the image end to end ----
# Root only (skips otherwise; docs/deploy.md). Each step has its own timeout; 30 min overall.
container-test:
	timeout -k 30 1800 tests/container/run.sh

# ---- benchmarks (docs/benchmarks.md); never part of `make test` ----
# The targets' cells (2 threads, batches 1 and 8, 5 xbnserve / ONNX Runtime pairs each), the
# HTTP runs, the plots and bench/layout.c: about 15 minutes on 2 cores. ONNX Runtime runs the
# configurations `make bench-ort-configs` found fastest on this machine, where it has run.
# --avx512 unsets OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for the benchmark's own processes.
bench: all models
	@scripts/deps.sh bench
	$(PY) bench/run.py --avx512 --out $(BUILD)/bench/engine.json
	$(PY) bench/http_bench.py --avx512 --model $(MODELS)/mobilenetv2-torch.safetensors \
	    --out $(BUILD)/bench/http-mobilenetv2-torch.json
	$(PY) bench/http_bench.py --avx512 --client-resize 256 --model $(MODELS)/mobilenetv2-torch.safetensors \
	    --out $(BUILD)/bench/http-mobilenetv2-torch-client256.json
	$(PY) bench/http_bench.py --avx512 --model $(MODELS)/resnet50-torch.safetensors \
	    --out $(BUILD)/bench/http-resnet50-torch.json
	$(PY) bench/plot.py $(BUILD)/bench/engine.json $(BUILD)/bench/http-*.json
	@mkdir -p $(BUILD)/bench
	$(CC) -O3 $(KERNEL_ARCHFLAGS) -ffp-contract=fast bench/layout.c -o $(BUILD)/bench/layout \
	    $(shell pkg-config --cflags --libs openblas) -lm && $(BUILD)/bench/layout

# ONNX Runtime's fastest configuration per model and batch (bench/ort_configs.py): about 20
# minutes on 2 cores; run it on the machine and in the quiet that `make bench` will have.
bench-ort-configs: all models
	@scripts/deps.sh bench
	$(PY) bench/ort_configs.py --out $(BUILD)/bench/ort-configs.json

format:
	clang-format -i $(C_FILES)

# clang-format clean, and every include within the dependency rule (tools/check_deps.sh).
lint: check-deps
	clang-format --dry-run --Werror $(C_FILES)

check-deps:
	@tools/check_deps.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)

# ---- npm validators for tests/integration (Kubernetes/KServe manifests, OpenAPI) ----
# Installed from the committed lock file into build/node (whatever BUILD is); the tests
# then run offline. `make test` and `make asan` get them through `pytest`.
NODE_DIR := build/node
NODE_SRC := tests/integration/node
$(NODE_DIR)/.stamp: $(NODE_SRC)/package.json $(NODE_SRC)/package-lock.json
	@mkdir -p $(NODE_DIR)
	cp $^ $(NODE_DIR)/
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@
node-deps: $(NODE_DIR)/.stamp
pytest: node-deps
.PHONY: node-deps
