"""otlp-feedback: OTLP feedback events -> typed Avro in Kafka."""
