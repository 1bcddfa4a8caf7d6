//go:build !failpoints

package failpoint

// Inject marks a point of the load path where a fault-injection build
// (-tags failpoints, see failpoint.go) can stop the process. In regular
// builds it does nothing and compiles away.
func Inject(string) {}
