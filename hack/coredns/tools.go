//go:build tools

// CoreDNS as its release builds it, every plugin of its plugin.cfg compiled in: its main package,
// imported here so that go.mod and go.sum pin it and what it needs.
package tools

import _ "github.com/coredns/coredns"
