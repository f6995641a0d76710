// Package e2e holds Tandem's end-to-end tests: real tandem processes, real toy
// WireServers and real TCP clients on 127.0.0.1.
package e2e
