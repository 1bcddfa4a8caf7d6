package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// scenario is a scale scenario's report (test/scale writes one with
// -scale.report): the make target that ran it and where its Markdown is.
type scenario struct {
	target, path string
}

// scenarioFlags collects -scenario target=path, in order.
type scenarioFlags []scenario

func (s *scenarioFlags) String() string { return fmt.Sprint(*s) }

func (s *scenarioFlags) Set(v string) error {
	target, path, ok := strings.Cut(v, "=")
	if !ok || target == "" || path == "" {
		return fmt.Errorf("parse scenario %q: want make-target=report.md", v)
	}
	*s = append(*s, scenario{target: target, path: path})
	return nil
}

// scenarioGoals is the goal rows of the scenarios' reports: the rows whose
// goal column is not empty, under the line that says what was simulated.
func scenarioGoals(scenarios []scenario) (string, error) {
	if len(scenarios) == 0 {
		return "", nil
	}
	var b strings.Builder
	b.WriteString("\nScale scenarios (`make bench` runs them after the benchmarks; a scenario figure, not a ratio):\n\n")
	b.WriteString("| scenario | figure | value | goal | met | command |\n|---|---|---|---|---|---|\n")
	var notes []string
	for _, s := range scenarios {
		about, rows, err := readScenario(s.path)
		if errors.Is(err, fs.ErrNotExist) {
			notes = append(notes, fmt.Sprintf("`make %s` wrote no report (%s).", s.target, s.path))
			continue
		}
		if err != nil {
			return "", err
		}
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | `make %s` |\n", r[0], r[1], r[2], r[3], r[4], s.target)
		}
		if about != "" {
			notes = append(notes, fmt.Sprintf("`make %s`: %s", s.target, about))
		}
	}
	for _, n := range notes {
		b.WriteString("\n" + n + "\n")
	}
	return b.String(), nil
}

// readScenario returns a report's description (its first paragraph after
// the heading) and the rows of its first table that name a goal.
func readScenario(path string) (about string, rows [][5]string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("open scenario report: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	inTable, tableDone := false, false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case about == "" && line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "|"):
			about = line
		case strings.HasPrefix(line, "|") && !tableDone:
			cells := strings.Split(strings.Trim(line, "|"), "|")
			if !inTable || len(cells) != 5 || strings.HasPrefix(strings.TrimSpace(cells[0]), "---") {
				inTable = true // the header row and the separator
				continue
			}
			var row [5]string
			for i, c := range cells {
				row[i] = strings.TrimSpace(c)
			}
			if row[3] != "" {
				rows = append(rows, row)
			}
		case inTable:
			tableDone = true
		}
	}
	if err := sc.Err(); err != nil {
		return "", nil, fmt.Errorf("read scenario report %s: %w", path, err)
	}
	return about, rows, nil
}
