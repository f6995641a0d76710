// Package procgroup runs an exec'd command in a process group of its own and kills that whole
// group when the command's context ends, so that the children a shell started go with it.
//
// A hook or a health command that times out is killed through its context; without this, a
// child it left (a daemon, a `sleep` in the background) would live on and could hold the
// command's output open. Output keeps a bounded copy of such a command's output for the log,
// with $PGPASSWORD masked; Run runs such a command without holding it up for, or killing, a
// daemon it leaves holding its output.
package procgroup
