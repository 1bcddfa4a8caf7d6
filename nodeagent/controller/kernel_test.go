package controller

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
)

// TestDataplaneWords: the dataplane names states and reasons with its own
// constants, copied into status unchanged, so each must be the API's word.
func TestDataplaneWords(t *testing.T) {
	for _, tc := range []struct{ dataplane, api string }{
		{string(dataplane.StatePending), string(v1alpha1.PhasePending)},
		{string(dataplane.StateAttached), string(v1alpha1.PhaseAttached)},
		{string(dataplane.StateFailed), string(v1alpha1.PhaseFailed)},
		{dataplane.ReasonAttached, v1alpha1.ReasonAttached},
		{dataplane.ReasonAttachFailed, v1alpha1.ReasonAttachFailed},
		{dataplane.ReasonAttachMismatch, v1alpha1.ReasonAttachMismatch},
		{dataplane.ReasonBundleInvalid, v1alpha1.ReasonBundleInvalid},
		{dataplane.ReasonInvalidConstant, v1alpha1.ReasonInvalidConstant},
		{dataplane.ReasonLoadFailed, v1alpha1.ReasonLoadFailed},
		{dataplane.ReasonMapIncompatible, v1alpha1.ReasonMapIncompatible},
		{dataplane.ReasonMapUpdateFailed, v1alpha1.ReasonMapUpdateFailed},
		{dataplane.ReasonNoInterface, v1alpha1.ReasonNoInterface},
		{dataplane.ReasonNoPodsOnNode, v1alpha1.ReasonNoPodsOnNode},
		{dataplane.ReasonNotSupported, v1alpha1.ReasonNotSupported},
		{dataplane.ReasonProgramNotInBundle, v1alpha1.ReasonProgramNotInBundle},
		{dataplane.ReasonTampered, v1alpha1.ReasonTampered},
		{dataplane.ReasonVerifierRejected, v1alpha1.ReasonVerifierRejected},
		{dataplane.ReasonWaitingForBundle, v1alpha1.ReasonWaitingForBundle},
	} {
		if tc.dataplane != tc.api {
			t.Errorf("dataplane says %q where the API says %q", tc.dataplane, tc.api)
		}
	}
	if dataplane.MaxRecentPodFailures != v1alpha1.MaxRecentPodFailures {
		t.Errorf("dataplane keeps %d recent pod failures, the API %d", dataplane.MaxRecentPodFailures, v1alpha1.MaxRecentPodFailures)
	}
}

// TestAPIStateCopiesEveryField: a row of the dataplane with every field
// set reaches status with every field set (VerifiedAt is the
// controller's own), value for value.
func TestAPIStateCopiesEveryField(t *testing.T) {
	var s dataplane.ProgramState
	fill(reflect.ValueOf(&s).Elem())
	got := apiState(&s)
	v := reflect.ValueOf(got)
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		if name == "VerifiedAt" {
			continue
		}
		if v.Field(i).IsZero() {
			t.Errorf("ProgramState.%s not copied from the dataplane's row", name)
		}
	}
	if got.State != v1alpha1.ProgramPhase(s.State) || got.Reason != s.Reason || got.ID != s.ID || got.RunCount != s.RunCount ||
		got.LoadedAt != s.LoadedAt || got.Pods.Failed != s.Pods.Failed || !reflect.DeepEqual(got.MapIDs, s.MapIDs) {
		t.Errorf("copied %+v from %+v", got, s)
	}
	if states := apiStates(nil); states != nil {
		t.Errorf("no rows became %v", states)
	}
}

// TestKernelInfoFields: the dataplane's KernelInfo holds every field of
// the API's, so Kernel.Kernel loses none.
func TestKernelInfoFields(t *testing.T) {
	dp := reflect.TypeOf(dataplane.KernelInfo{})
	api := reflect.TypeOf(v1alpha1.KernelInfo{})
	for i := 0; i < api.NumField(); i++ {
		f := api.Field(i)
		if g, ok := dp.FieldByName(f.Name); !ok || g.Type != f.Type {
			t.Errorf("dataplane.KernelInfo has no %s %s", f.Name, f.Type)
		}
	}
	if dp.NumField() != api.NumField() {
		t.Errorf("dataplane.KernelInfo has %d fields, the API's %d", dp.NumField(), api.NumField())
	}
}

// fill sets every exported field of v to a value that is not zero, each
// number distinct.
func fill(v reflect.Value) {
	n := 0
	var set func(v reflect.Value)
	set = func(v reflect.Value) {
		n++
		switch v.Kind() {
		case reflect.String:
			v.SetString("s" + string(rune('a'+n%26)))
		case reflect.Int, reflect.Int32, reflect.Int64:
			v.SetInt(int64(n))
		case reflect.Uint32, reflect.Uint64:
			v.SetUint(uint64(n))
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
			set(v.Index(0))
		case reflect.Pointer:
			if v.Type() == reflect.TypeOf(&metav1.Time{}) {
				now := metav1.Now()
				v.Set(reflect.ValueOf(&now))
				return
			}
			v.Set(reflect.New(v.Type().Elem()))
			set(v.Elem())
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() {
					set(v.Field(i))
				}
			}
		}
	}
	set(v)
}
