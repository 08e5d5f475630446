// Command kstatus prints the status that kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status) computes
// for Kubernetes objects. kstatus is the library Flux (wait: true, health checks) and kpt use to decide
// whether a resource is Current, InProgress or Failed; running the real thing lets the tests prove
// that an AgentRollout's status conditions mean what the README promises, rather than trusting a
// re-implementation of its rules.
//
// It reads one object as JSON on stdin, or a List of them (`kubectl get -o json`), and prints one
// JSON line per object: {"name": ..., "status": ..., "message": ...}. Bad input is an error on
// stderr and a non-zero exit code.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type line struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	objects, err := decode(data)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	for _, u := range objects {
		res, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("%s %q: %w", u.GetKind(), u.GetName(), err)
		}
		if err := enc.Encode(line{Name: u.GetName(), Status: res.Status.String(), Message: res.Message}); err != nil {
			return err
		}
	}
	return nil
}

// decode reads one object or a List. The unstructured JSON scheme keeps integers as int64, which
// kstatus needs to compare metadata.generation with status.observedGeneration.
func decode(data []byte) ([]*unstructured.Unstructured, error) {
	if len(data) == 0 {
		return nil, errors.New("no input: expected a Kubernetes object as JSON on stdin")
	}
	obj, _, err := unstructured.UnstructuredJSONScheme.Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("stdin is not a Kubernetes object as JSON: %w", err)
	}
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		return []*unstructured.Unstructured{o}, nil
	case *unstructured.UnstructuredList:
		items := make([]*unstructured.Unstructured, len(o.Items))
		for i := range o.Items {
			items[i] = &o.Items[i]
		}
		return items, nil
	default:
		return nil, fmt.Errorf("unexpected object %T", obj)
	}
}
