"""The detection service: organization API keys, quotas, fair batching, metering, and the ASGI
app `defectlab serve-inference` runs (``serving.app``)."""
