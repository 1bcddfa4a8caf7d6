package plugin

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// table prints rows as aligned columns under a header; with wide, each
// row's wide columns follow its columns (-o wide).
type table struct {
	tw   *tabwriter.Writer
	wide bool
}

// newTable prints the header: columns, then with wide wideColumns (both
// tab-separated).
func newTable(w io.Writer, wide bool, columns, wideColumns string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0), wide: wide}
	if wide {
		columns += "\t" + wideColumns
	}
	fmt.Fprintln(t.tw, columns)
	return t
}

// row prints one row: cells, then with wide wideCells.
func (t *table) row(cells []string, wideCells ...string) {
	if t.wide {
		cells = append(cells, wideCells...)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }
