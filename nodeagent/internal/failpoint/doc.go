// Package failpoint marks the points of the agent's load path where a
// fault-injection build (-tags failpoints) can stop the process, so that
// test/faults can SIGKILL the agent at each phase. In regular builds Inject
// does nothing and compiles away.
package failpoint
