# kernelgate: `make run` and `make test` work on a fresh Debian 12 machine as
# root. Both install what is missing first (Debian packages only).

export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
FUZZTIME ?= 10s

# Debian packages the kernels need (bubblewrap: the kernel sandbox). Python packages come from
# Debian and run on /usr/bin/python3 (the python3 first on PATH may lack them).
DEB_PACKAGES := python3-ipykernel python3-ipython python3-jupyter-client \
	python3-pandas python3-numpy python3-matplotlib python3-plotly bubblewrap
# What only the tests and the benchmark need: real clients and a real browser.
TEST_DEB_PACKAGES := python3-jupyter-server chromium nodejs

.PHONY: all deps test-deps install-debs build run test vet fuzz bench clean

all: build

# Installs only what is missing, so a warm machine pays nothing.
deps:
	@$(MAKE) --no-print-directory install-debs PKGS="$(DEB_PACKAGES)"

# The tests also need Jupyter Server, Chromium and Node.js with npm (npm is
# inside nodesource's nodejs package, a package of its own in Debian's).
test-deps: deps
	@$(MAKE) --no-print-directory install-debs PKGS="$(TEST_DEB_PACKAGES) $$(command -v npm >/dev/null || echo npm)"

install-debs:
	@command -v $(GO) >/dev/null || { echo "Go is not installed (expected at /usr/local/go/bin/go)"; exit 1; }
	@missing=$$(for p in $(PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	$(GO) build -trimpath -o bin/kernelgate ./cmd/kernelgate

run: build
	./bin/kernelgate serve $(ARGS)

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Every fuzz target runs for FUZZTIME on top of its seed corpus (which plain
# `go test` already runs).
fuzz: test-deps
	@for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for target in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

test: test-deps vet
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory fuzz

bench: test-deps build
	$(GO) run ./cmd/kgbench $(ARGS)

clean:
	rm -rf bin
