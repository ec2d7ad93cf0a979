package manifests

import "testing"

func TestDaemonSetRules(t *testing.T) {
	head := "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: logs}\nspec:\n"
	tmpl := "  template:\n    metadata: {labels: {app: logs}}\n    spec:\n      containers: [{name: main, image: example.com/logs:1}]\n"
	tests := []struct {
		name, spec string
		want       []string
	}{
		{"valid", "  selector: {matchLabels: {app: logs}}\n  updateStrategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}\n" + tmpl, nil},
		{"no selector", tmpl, []string{"a.yaml:4: spec.selector: required; select the template's pods, such as matchLabels: {app: logs}"}},
		{"both zero", "  selector: {matchLabels: {app: logs}}\n  updateStrategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}\n" + tmpl,
			[]string{"a.yaml:6: spec.updateStrategy.rollingUpdate.maxUnavailable: may not be 0 when maxSurge is 0; the rollout could never make progress"}},
		{"OnDelete with rollingUpdate", "  selector: {matchLabels: {app: logs}}\n  updateStrategy: {type: OnDelete, rollingUpdate: {maxUnavailable: 2}}\n" + tmpl,
			[]string{"a.yaml:6: spec.updateStrategy.rollingUpdate: may not be set when updateStrategy type is OnDelete"}},
		{"restartPolicy", "  selector: {matchLabels: {app: logs}}\n" + tmpl + "      restartPolicy: Never\n",
			[]string{"a.yaml:10: spec.template.spec.restartPolicy: a DaemonSet's pods must have restartPolicy Always, not Never"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrors(t, head+tt.spec, tt.want) })
	}
	objs, errs := DecodeFile("a.yaml", []byte(head+"  selector: {matchLabels: {app: logs}}\n"+tmpl), LoadOptions{})
	if errs != nil {
		t.Fatal(errs)
	}
	ds := objs[0].(*DaemonSet)
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ds.Spec.UpdateStrategy.Type != RollingUpdateDaemonSetStrategyType ||
		ru.MaxUnavailable.IntVal != 1 || ru.MaxSurge.IntVal != 0 || *ds.Spec.RevisionHistoryLimit != 10 {
		t.Errorf("defaults %+v", ds.Spec.UpdateStrategy)
	}
}
