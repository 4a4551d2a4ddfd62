# berth — build, run, test.
GO      ?= go
BIN     ?= bin/berth
PKGS    := ./...

.PHONY: build run test test-short lint bench fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/berth

# Builds and starts `berth serve` with the defaults: 127.0.0.1:8080, ./berth-data, SQLite.
run: build
	./$(BIN) serve

# Everything the machine can run: unit, store (SQLite, and PostgreSQL when
# BERTH_TEST_POSTGRES is set), Docker runtime and end-to-end tests.
test: lint
	$(GO) test -count=1 -timeout 20m $(PKGS)

test-short:
	$(GO) test -count=1 -short $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m $(PKGS)

clean:
	rm -rf bin
