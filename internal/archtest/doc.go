// Package archtest holds no code, only tests that keep the architecture
// honest: the import rules of docs/architecture.md and a doc comment on every
// package.
package archtest
