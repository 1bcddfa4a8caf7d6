package e2e

import (
	"os"
	"os/signal"
	"syscall"
)

func waitForInterrupt() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	<-ch
}
