"""The moto fixture itself: boto3 reaches the server through AWS_ENDPOINT_URL alone."""

import boto3


def test_s3_round_trip_over_http(aws: str) -> None:
    s3 = boto3.client("s3")
    assert s3.meta.endpoint_url == aws
    s3.create_bucket(Bucket="fixture-check")
    s3.put_object(Bucket="fixture-check", Key="a b/ü.txt", Body=b"hello")
    assert s3.get_object(Bucket="fixture-check", Key="a b/ü.txt")["Body"].read() == b"hello"
