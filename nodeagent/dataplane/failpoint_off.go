//go:build !failpoints

package dataplane

// failpoint marks a point of the load path where a fault-injection build
// (-tags failpoints, see failpoint.go) can stop the process. In regular
// builds it does nothing and compiles away.
func failpoint(string) {}
