# berth — build, run, test.
GO      ?= go
BIN     ?= bin/berth
PKGS    := ./...

.PHONY: build run doctor dashboard test test-stress test-short lint errcheck bench fuzz clean

# The sandbox supervisor (PID 1 of every sandbox) is built static next to
# berth, where `berth serve` finds it; a plain `go build ./cmd/berth` in a
# checkout works too: serve then builds it with the Go toolchain.
build:
	$(GO) build -o $(BIN) ./cmd/berth
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(dir $(BIN))berth-supervisor ./cmd/berth-supervisor

# Builds and starts `berth serve` with the defaults: 127.0.0.1:8080, ./berth-data, SQLite.
# First makes sure a container engine answers (scripts/ensure-engine): as root
# on Debian it sets one up with .ci/docker-up; elsewhere it finds Docker
# Desktop, rootless Docker or the system engine, or says what is missing.
run: build
	@scripts/ensure-engine ./$(BIN)
	./$(BIN) serve

# Checks engine, storage, database and ports as `berth serve` would use them.
doctor: build
	./$(BIN) doctor

# Rebuilds the dashboard's committed bundle (dashboard/dist) from its sources
# (dashboard/web); needs Node and npm. `go build` and `make run` do not: they
# embed the committed bundle. A test in ./dashboard fails when it is stale.
dashboard:
	cd dashboard/web && npm ci --no-audit --no-fund && npm run build

# Everything the machine can run: unit, store (SQLite, and PostgreSQL when
# BERTH_TEST_POSTGRES is set), Docker runtime and end-to-end tests.
test: lint
	$(GO) test -count=1 -timeout 20m $(PKGS)

# The same suite while stress-ng loads both cores and the disk: no test may
# depend on an idle machine. stress-ng (Debian package stress-ng) runs in
# the background with its files in a temporary directory and is stopped,
# and that directory removed, whatever the tests' outcome.
STRESS ?= stress-ng --cpu 2 --hdd 1 --hdd-bytes 256M --io 1
test-stress:
	@command -v stress-ng >/dev/null || { echo "test-stress needs stress-ng (apt-get install stress-ng)"; exit 1; }
	@dir=$$(mktemp -d); \
	$(STRESS) --temp-path "$$dir" --quiet & pid=$$!; \
	stop() { kill -TERM $$pid 2>/dev/null; wait $$pid 2>/dev/null; rm -rf "$$dir"; }; \
	trap 'stop; exit 130' INT TERM; \
	start=$$(date +%s); \
	$(MAKE) test; rc=$$?; \
	stop; \
	echo "test-stress: make test exited $$rc after $$(( $$(date +%s) - start ))s under: $(STRESS)"; \
	exit $$rc

test-short:
	$(GO) test -count=1 -short $(PKGS)

# gofmt and go vet, then errcheck (below): every error handled or visibly
# ignored.
lint: errcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# errcheck runs golangci-lint (errcheck and gofmt, see .golangci.yml) at a
# pinned version, built once into bin/ (git-ignored) from the Go module
# proxy; `make lint` runs it.
GOLANGCI_VERSION := v2.15.0
GOLANGCI := bin/golangci-lint-$(GOLANGCI_VERSION)/golangci-lint
$(GOLANGCI):
	GOBIN=$(CURDIR)/$(dir $(GOLANGCI)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

errcheck: $(GOLANGCI)
	$(GOLANGCI) run $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m $(PKGS)

clean:
	rm -rf bin
