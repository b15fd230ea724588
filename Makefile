# gambar - one non-recursive Makefile.
#
#   make            build every stage into build/bin (-O2, warnings are errors)
#   make test       install deps, build, run the whole test suite
#   make run        install deps, build, run the main job (pipelines/fashion-dcgan.ini)
#   make bench      print `bench: NAME VALUE UNIT` lines
#   make asan       build with AddressSanitizer + UBSan into build/asan
#   make test SANITIZE=1   the test suite under the sanitizers
#   make tsan       test_nn (the nn_par.c pool) under ThreadSanitizer
#   make fuzz FUZZ_SECONDS=N   run every libFuzzer harness for N seconds
#   make install PREFIX=/usr/local DESTDIR=
#
# Layout: common/LAYER/*.c -> libgambar.a (layers: core, nn, img, io, msg;
# which may include which is in scripts/check-layers.sh, run by make test);
# stages/NAME/*.c -> bin/gambar-NAME; proto/*.proto -> generated C in
# $(BUILD)/gen (never committed); tests/test_*.c -> one test program each,
# linked with tests/lib/*.c (test-only helpers); tests/t_*.sh -> shell tests.

VERSION  := 0.1.0
CC       ?= cc
PKGS     := libzmq libprotobuf-c libpng lmdb openblas inih libmicrohttpd libcrypto zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(SANITIZE),1)
BUILD    ?= build/asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT      ?= -O1 -g
else
BUILD    ?= build
SANFLAGS :=
OPT      ?= -O2 -g
endif

BIN      := $(BUILD)/bin
GEN      := $(BUILD)/gen
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
CFLAGS   += -std=c11 -D_GNU_SOURCE -DGAMBAR_VERSION='"$(VERSION)"' $(OPT) $(WARN) $(SANFLAGS) \
            -pthread $(COMMON_INC) -I$(GEN) $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lm -pthread
LDFLAGS  += $(SANFLAGS)
LAYERS     := core nn img io msg
COMMON_INC := $(addprefix -Icommon/,$(LAYERS)) -Itests/lib
DEPFLAGS := -MMD -MP

PROTOS     := $(wildcard proto/*.proto)
PROTO_C    := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PROTO_H    := $(PROTO_C:.c=.h)
COMMON_SRC := $(wildcard $(addsuffix /*.c,$(addprefix common/,$(LAYERS))))
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TESTLIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(TESTLIB_SRC))
LIB_OBJS   := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRC)) $(patsubst $(GEN)/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))
LIB        := $(BUILD)/libgambar.a
STAGES     := $(notdir $(patsubst %/,%,$(wildcard stages/*/)))
STAGE_BINS := $(addprefix $(BIN)/gambar-,$(STAGES))
TEST_SRC   := $(wildcard tests/test_*.c)
TEST_BINS  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TOOL_SRC   := $(wildcard tests/tools/*.c)
TOOL_BINS  := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))
MAN_SRC    := $(wildcard stages/*/*.scd)
MANS       := $(patsubst %.scd,$(BUILD)/man/%,$(notdir $(MAN_SRC)))

PREFIX   ?= /usr/local
DESTDIR  ?=

.PHONY: all deps test run bench asan tsan fuzz install clean man check-tests
.SECONDARY:

FAULTINJ   := $(BUILD)/tools/libfaultinj.so

all: $(LIB) $(STAGE_BINS) $(TEST_BINS) $(TOOL_BINS) $(FAULTINJ) man

deps:
	@sh scripts/install-deps.sh

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -Iproto $<

$(BUILD)/obj/gen/%.o: $(GEN)/%.c $(PROTO_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Wno-missing-prototypes $(DEPFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(PROTO_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

define STAGE_RULE
$(BIN)/gambar-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard stages/$(1)/*.c)) $(LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(STAGES),$(eval $(call STAGE_RULE,$(s))))

# gambar-train is data-parallel under mpirun (stages/train/train_mpi.c).
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null)
$(BUILD)/obj/stages/train/%.o: CFLAGS += $(MPI_CFLAGS)
$(BIN)/gambar-train: LDLIBS += $(MPI_LIBS)

# gambar-dash serves its page from memory: stages/dash/web/* and Debian's
# Chart.js (libjs-chart.js) are embedded at build time (stages/dash/embed.sh).
DASH_WEB := $(sort $(wildcard stages/dash/web/*)) $(wildcard /usr/share/javascript/chart.js/chart.min.js)
$(GEN)/dash_assets.c: $(DASH_WEB) stages/dash/embed.sh
	@mkdir -p $(GEN)
	sh stages/dash/embed.sh $@ $(DASH_WEB)
$(BIN)/gambar-dash: $(BUILD)/obj/gen/dash_assets.o

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB_OBJS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)

# test_featnet also tests gambar-eval's feature-network file glue
# (stages/eval/eval_featio.c), its one user being that stage.
$(BUILD)/obj/tests/test_featnet.o: CFLAGS += -Istages/eval
$(BUILD)/tests/test_featnet: $(BUILD)/obj/stages/eval/eval_featio.o

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(TESTLIB_OBJS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The fault-injection library (tests/t_faultinj.sh), an LD_PRELOAD object:
# built without the sanitizers (their runtime must be the first library).
$(FAULTINJ): tests/faultinj/faultinj.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -fPIC -shared -o $@ $< -ldl

man: $(MANS)
$(BUILD)/man/%: $(MAN_SRC)
	@mkdir -p $(@D)
	scdoc < $(filter %/$*.scd,$(MAN_SRC)) > $@

test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tests/run.sh

asan:
	@$(MAKE) --no-print-directory SANITIZE=1 all

# test_nn under ThreadSanitizer (clang): its par_stress test and the
# layer passes drive the nn_par.c pool; one command compiles the library
# sources in. A report fails the run (exit 66). GAMBAR_GOLDEN as for
# tests/run.sh.
TSAN_BUILD := build/tsan
tsan: $(PROTO_C)
	@mkdir -p $(TSAN_BUILD)
	clang -std=c11 -D_GNU_SOURCE -DGAMBAR_VERSION='"$(VERSION)"' -O1 -g $(WARN) -fsanitize=thread \
	  -fno-omit-frame-pointer -pthread $(COMMON_INC) -I$(GEN) $(PKG_CFLAGS) -Wno-missing-prototypes \
	  $(COMMON_SRC) $(PROTO_C) $(TESTLIB_SRC) tests/test_nn.c -o $(TSAN_BUILD)/test_nn $(PKG_LIBS) -lm
	TSAN_OPTIONS=halt_on_error=1 GAMBAR_GOLDEN="$${GAMBAR_GOLDEN:-$$(cd .. && pwd)/shared/golden}" $(TSAN_BUILD)/test_nn

run: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/run-main.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh scripts/bench.sh

# libFuzzer harnesses: tests/fuzz/fuzz_*.c, each linked with the library
# rebuilt by clang with the fuzzer's instrumentation.
FUZZ_SECONDS ?= 10
FUZZ_BUILD   := build/fuzz
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRC))
# -fno-sanitize-recover: a UBSan finding must stop the run so that
# libFuzzer records it as a crash (by default UBSan only prints).
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -DGAMBAR_VERSION='"$(VERSION)"' -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
                -fno-sanitize-recover=undefined $(COMMON_INC) -Istages/run -I$(FUZZ_BUILD)/gen $(PKG_CFLAGS)
FUZZ_LIB_OBJS := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(COMMON_SRC) $(TESTLIB_SRC) stages/run/pipeline.c) $(patsubst proto/%.proto,$(FUZZ_BUILD)/obj/gen/%.pb-c.o,$(PROTOS))

$(FUZZ_BUILD)/gen/%.pb-c.c $(FUZZ_BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(FUZZ_BUILD)/gen
	protoc-c --c_out=$(FUZZ_BUILD)/gen -Iproto $<
$(FUZZ_BUILD)/obj/gen/%.o: $(FUZZ_BUILD)/gen/%.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
$(FUZZ_BUILD)/obj/%.o: %.c $(patsubst proto/%.proto,$(FUZZ_BUILD)/gen/%.pb-c.h,$(PROTOS))
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_LIB_OBJS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -MMD -MP -MF $@.d -o $@ $(filter %.c %.o,$^) $(PKG_LIBS) -lm -pthread

# Each harness runs on its own corpus plus its committed seeds and the
# committed corpus of earlier long runs (tests/fuzz/corpus/NAME) (and
# tests/fuzz/NAME.dict when present); its output
# goes to build/fuzz/NAME.log (the last lines are shown). A crash, leak or
# sanitizer report leaves crash-*/leak-* files in build/fuzz and fails.
fuzz: deps $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
	  n=$$(basename $$f); mkdir -p build/fuzz/corpus/$$n; \
	  seeds=; [ -d tests/fuzz/seeds/$$n ] && seeds=tests/fuzz/seeds/$$n; \
	  [ -d tests/fuzz/corpus/$$n ] && seeds="$$seeds tests/fuzz/corpus/$$n"; \
	  dict=; [ -f tests/fuzz/$$n.dict ] && dict=-dict=tests/fuzz/$$n.dict; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=build/fuzz/ $$dict \
	    build/fuzz/corpus/$$n $$seeds >build/fuzz/$$n.log 2>&1; rc=$$?; \
	  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|Done )' build/fuzz/$$n.log | tail -2; \
	  if [ $$rc -ne 0 ]; then tail -40 build/fuzz/$$n.log; echo "fuzz: $$n FAILED (exit $$rc), see build/fuzz/$$n.log"; exit 1; fi; \
	done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/gambar/proto $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/gambar/pipelines $(DESTDIR)$(PREFIX)/share/gambar/scripts $(DESTDIR)$(PREFIX)/lib/gambar
	install -m 755 $(STAGE_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(PROTOS) $(DESTDIR)$(PREFIX)/share/gambar/proto/
	install -m 644 $(MANS) $(DESTDIR)$(PREFIX)/share/man/man1/
	if ls pipelines/*.ini >/dev/null 2>&1; then install -m 644 pipelines/*.ini $(DESTDIR)$(PREFIX)/share/gambar/pipelines/; fi
	# fashion-text.ini's captions step: ${file_dir}/../scripts/fashion-captions.sh,
	# which finds its tool in ../../lib/gambar when installed
	install -m 755 scripts/fashion-captions.sh $(DESTDIR)$(PREFIX)/share/gambar/scripts/
	install -m 755 $(BUILD)/tools/fashion_captions $(DESTDIR)$(PREFIX)/lib/gambar/

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
