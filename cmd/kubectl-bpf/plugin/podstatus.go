package plugin

import (
	"context"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// namespace returns the namespace given with -n/--namespace, or "".
func (o *options) namespace() string {
	if o.flags.Namespace == nil {
		return ""
	}
	return *o.flags.Namespace
}

// PodProgramRow is one BpfPodProgram as its namespace's users see it: the
// status the operator copies from the BpfProgram it keeps for it, so that
// reading it needs only `get` on bpfpodprograms in that namespace.
type PodProgramRow struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Image     string `json:"image"`
	v1.BpfProgramStatus
}

// podProgramRows lists the BpfPodPrograms of namespace, or only name.
func podProgramRows(ctx context.Context, c client.Client, namespace, name string) ([]PodProgramRow, error) {
	var list v1.BpfPodProgramList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list bpfpodprograms in %s: %w", namespace, err)
	}
	rows := []PodProgramRow{}
	for _, p := range list.Items {
		if name != "" && p.Name != name {
			continue
		}
		rows = append(rows, PodProgramRow{Namespace: p.Namespace, Name: p.Name, Image: p.Spec.Bundle.Image, BpfProgramStatus: p.Status})
	}
	if name != "" && len(rows) == 0 {
		return nil, fmt.Errorf("get bpfpodprogram %s/%s: not found", namespace, name)
	}
	return rows, nil
}

func printPodPrograms(w io.Writer, rows []PodProgramRow, wide bool) error {
	t := newTable(w, wide, "NAMESPACE\tBPFPODPROGRAM\tTYPES\tDIGEST\tNODES\tFAILED\tACCEPTED\tREADY\tREASON", "IMAGE\tSIGNER\tMESSAGE")
	for _, r := range rows {
		ready := meta.FindStatusCondition(r.Conditions, v1.ConditionReady)
		accepted := meta.FindStatusCondition(r.Conditions, v1.ConditionAccepted)
		reason, message := "-", "-"
		if ready != nil {
			reason, message = ready.Reason, oneLine(ready.Message)
		}
		t.row([]string{
			r.Namespace, r.Name, dash(r.AttachTypes), dash(r.ShortDigest), dash(r.Nodes.Summary), num(uint64(r.Nodes.Failed)),
			conditionStatus(accepted), conditionStatus(ready), reason,
		}, r.Image, shortSigner(r.Signer), dash(message))
	}
	return t.flush()
}

func conditionStatus(c *metav1.Condition) string {
	if c == nil {
		return "-"
	}
	return string(c.Status)
}
