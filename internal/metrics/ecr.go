package metrics

import (
	"context"

	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
)

const opGetAuthorizationToken = "GetAuthorizationToken"

// InstrumentECR returns an ecr.API that calls api and records the duration
// and result of each request in ecr_request_duration_seconds.
func (m *Metrics) InstrumentECR(api ecr.API) ecr.API {
	return &instrumentedECR{
		api:     api,
		clock:   m.clock,
		success: m.ecrDuration.WithLabelValues(opGetAuthorizationToken, resultSuccess),
		failure: m.ecrDuration.WithLabelValues(opGetAuthorizationToken, resultError),
	}
}

type instrumentedECR struct {
	api              ecr.API
	clock            clock.PassiveClock
	success, failure prometheus.Observer
}

func (e *instrumentedECR) GetAuthorizationToken(ctx context.Context, in *awsecr.GetAuthorizationTokenInput, optFns ...func(*awsecr.Options)) (*awsecr.GetAuthorizationTokenOutput, error) {
	start := e.clock.Now()
	out, err := e.api.GetAuthorizationToken(ctx, in, optFns...)
	obs := e.success
	if err != nil {
		obs = e.failure
	}
	obs.Observe(e.clock.Since(start).Seconds())
	return out, err
}
