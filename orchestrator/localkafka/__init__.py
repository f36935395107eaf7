"""Local Apache Kafka from Maven Central jars."""
