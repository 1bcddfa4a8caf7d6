//go:build linux

// Package benchprogs holds the XDP programs the benchmarks measure against
// or use as a traffic source: xdp_pass (the baseline cost of running any
// XDP program), xdp_tx (bounces frames out; run with live frames it
// generates traffic) and xdp_drop (a sink).
package benchprogs

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Programs are the loaded benchmark programs.
type Programs struct {
	// Pass returns XDP_PASS.
	Pass *ebpf.Program
	// TX returns XDP_TX.
	TX *ebpf.Program
	// Drop returns XDP_DROP.
	Drop *ebpf.Program
}

// Load loads the programs; Close them when done.
func Load() (*Programs, error) {
	var objs benchprogsObjects
	if err := loadBenchprogsObjects(&objs, nil); err != nil {
		return nil, fmt.Errorf("load benchmark programs: %w", err)
	}
	return &Programs{Pass: objs.XdpPass, TX: objs.XdpTx, Drop: objs.XdpDrop}, nil
}

// Close unloads the programs.
func (p *Programs) Close() error {
	return errors.Join(p.Pass.Close(), p.TX.Close(), p.Drop.Close())
}
