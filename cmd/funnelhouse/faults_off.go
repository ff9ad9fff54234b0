//go:build !testhooks

package main

// killHook is the default build's: no fault-injection hook, whatever the
// environment says (the crash tests build with -tags testhooks, which
// replaces this with faults.go).
func killHook() (func(string), error) { return nil, nil }
