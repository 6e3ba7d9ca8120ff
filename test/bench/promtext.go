package main

import (
	"fmt"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is one sample of a Prometheus text exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseSamples returns the samples of the metrics named in names (all when
// names is empty) from a Prometheus text exposition, parsed by prometheus/
// common's expfmt, in the order of the exposition within each metric and of
// names across metrics. Counters, gauges and untyped metrics have one value
// per sample; other types are not read.
func parseSamples(text string, names ...string) ([]sample, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	if len(names) == 0 {
		for n := range families {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	var out []sample
	for _, n := range names {
		mf, ok := families[n]
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			s := sample{name: n, labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				s.value = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.value = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				s.value = m.GetUntyped().GetValue()
			default:
				continue
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// sumSamples adds up the values of the samples that match.
func sumSamples(samples []sample, match func(labels map[string]string) bool) float64 {
	var sum float64
	for _, s := range samples {
		if match == nil || match(s.labels) {
			sum += s.value
		}
	}
	return sum
}
