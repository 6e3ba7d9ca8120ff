# A Dockerfile with one mistake per rule the test expects (not built).
from golang:1.26 as Build
ENV GOFLAGS -mod=mod
COPY . $SRC
RUN go build ./...
CMD ./app
