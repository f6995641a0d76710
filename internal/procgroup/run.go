package procgroup

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Run runs cmd (made, not started, its Stdout and Stderr unset) with its output going to a
// pipe of its own, which a goroutine reads to its end, and returns Wait's error (or Start's, or
// the pipe's). What comes on the pipe goes to out until Run returns: once cmd is gone (exited,
// or its process group killed at the end of its context), a child it left (a daemon it started)
// may still hold the pipe, and Run waits for that no longer than linger. The rest is read and
// dropped, not written to out, which is then the caller's to read: with the pipe's read end
// closed, as exec does after its WaitDelay, the child's next write (a log line) would kill it
// with SIGPIPE.
func Run(cmd *exec.Cmd, out io.Writer, linger time.Duration) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("its output pipe: %w", err)
	}
	kept := &untilTaken{w: out}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close() // the command and its children hold it now
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(kept, r)
		r.Close()
	}()
	if err == nil {
		err = cmd.Wait()
	}
	wait := time.NewTimer(linger)
	select {
	case <-read:
	case <-wait.C:
	}
	wait.Stop()
	kept.take()
	return err
}

// untilTaken passes what is written to w until take; the rest it drops.
type untilTaken struct {
	mu    sync.Mutex
	w     io.Writer
	taken bool
}

func (u *untilTaken) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.taken {
		_, _ = u.w.Write(p)
	}
	return len(p), nil
}

// take ends the writes to w: once it returns, w is not written any more.
func (u *untilTaken) take() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.taken = true
}
