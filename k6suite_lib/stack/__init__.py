"""The embedded KafScale stack: etcd, MinIO, Toxiproxy, brokers and the proxy as local processes."""
