"""SNS and SQS: a topic fanning out to a queue, the queue's dead-letter queue and its policy."""

import json
from typing import Any

MAIN = '''"""Orders: a topic fans out to a work queue; failed messages go to a dead-letter queue."""
import json

import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1

dead_letters = aws.sqs.Queue(
    "dead-letters",
    name="corpus-orders-dead-letters",
    message_retention_seconds=1209600,
    tags={"stage": str(stage)},
)
work = aws.sqs.Queue(
    "work",
    name_prefix="corpus-orders-work-",
    visibility_timeout_seconds=60 if stage == 1 else 120,
    delay_seconds=0 if stage == 1 else 5,
    redrive_policy=dead_letters.arn.apply(
        lambda arn: json.dumps(
            {"deadLetterTargetArn": arn, "maxReceiveCount": 3 if stage == 1 else 5}
        )
    ),
)
# A new name is a new topic: stage 2 replaces it, and its subscription with it.
orders = aws.sns.Topic(
    "orders",
    name="corpus-orders" if stage == 1 else "corpus-orders-v2",
    display_name="Orders" if stage == 1 else "Orders (v2)",
)
subscription = aws.sns.TopicSubscription(
    "orders-to-work",
    topic=orders.arn,
    protocol="sqs",
    endpoint=work.arn,
    raw_message_delivery=stage == 1,
)
policy = aws.sqs.QueuePolicy(
    "work-policy",
    queue_url=work.id,
    policy=pulumi.Output.all(work.arn, orders.arn).apply(
        lambda arns: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "TopicSends" if stage == 1 else "OrdersTopicSends",
                        "Effect": "Allow",
                        "Principal": {"Service": "sns.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": arns[0],
                        "Condition": {"ArnEquals": {"aws:SourceArn": arns[1]}},
                    }
                ],
            }
        )
    ),
)

pulumi.export("topic_arn", orders.arn)
pulumi.export("subscription_arn", subscription.arn)
pulumi.export("work_url", work.url)
pulumi.export("work_arn", work.arn)
pulumi.export("dead_letters_url", dead_letters.url)
pulumi.export("dead_letters_arn", dead_letters.arn)
'''

_TOPIC_NAMES = ("corpus-orders", "corpus-orders-v2")


def _queue(aws: Any, url: str) -> dict[str, str]:
    found: dict[str, str] = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    return found


def check(aws: Any, outputs: dict[str, Any], stage: int) -> None:
    """After the apply of `stage`: boto3 finds exactly the declared properties."""
    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.get_topic_attributes(TopicArn=outputs["topic_arn"])["Attributes"]
    assert outputs["topic_arn"].endswith(":corpus-orders" if stage == 1 else ":corpus-orders-v2")
    assert topic["DisplayName"] == ("Orders" if stage == 1 else "Orders (v2)")
    topics = {t["TopicArn"].rsplit(":", 1)[1] for t in sns.list_topics()["Topics"]}
    assert topics & set(_TOPIC_NAMES) == {_TOPIC_NAMES[stage - 1]}

    subscription = sns.get_subscription_attributes(SubscriptionArn=outputs["subscription_arn"])[
        "Attributes"
    ]
    assert (subscription["TopicArn"], subscription["Protocol"], subscription["Endpoint"]) == (
        outputs["topic_arn"],
        "sqs",
        outputs["work_arn"],
    )
    assert subscription["RawMessageDelivery"] == ("true" if stage == 1 else "false")
    listed = sns.list_subscriptions_by_topic(TopicArn=outputs["topic_arn"])["Subscriptions"]
    assert [s["SubscriptionArn"] for s in listed] == [outputs["subscription_arn"]]

    dead = _queue(aws, outputs["dead_letters_url"])
    assert dead["QueueArn"] == outputs["dead_letters_arn"]
    assert outputs["dead_letters_arn"].endswith(":corpus-orders-dead-letters")
    assert dead["MessageRetentionPeriod"] == "1209600"
    assert sqs.list_queue_tags(QueueUrl=outputs["dead_letters_url"])["Tags"] == {
        "stage": str(stage)
    }

    work = _queue(aws, outputs["work_url"])
    assert outputs["work_arn"].split(":")[-1].startswith("corpus-orders-work-")
    assert work["VisibilityTimeout"] == ("60" if stage == 1 else "120")
    assert work["DelaySeconds"] == ("0" if stage == 1 else "5")
    assert json.loads(work["RedrivePolicy"]) == {
        "deadLetterTargetArn": outputs["dead_letters_arn"],
        "maxReceiveCount": 3 if stage == 1 else 5,
    }
    (statement,) = json.loads(work["Policy"])["Statement"]
    assert statement["Sid"] == ("TopicSends" if stage == 1 else "OrdersTopicSends")
    assert statement["Resource"] == outputs["work_arn"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": outputs["topic_arn"]}}

    # The wiring works: what the topic is sent reaches the queue (raw in stage 1 only).
    sns.publish(TopicArn=outputs["topic_arn"], Message="order 42")
    (message,) = sqs.receive_message(
        QueueUrl=outputs["work_url"], WaitTimeSeconds=5 + 5 * (stage - 1)
    )["Messages"]
    body = message["Body"] if stage == 1 else json.loads(message["Body"])["Message"]
    assert body == "order 42"
    sqs.delete_message(QueueUrl=outputs["work_url"], ReceiptHandle=message["ReceiptHandle"])


def gone(aws: Any, outputs: dict[str, Any]) -> None:
    """After destroy: nothing the program declared is left (the outputs of stage 2)."""
    sns, sqs = aws("sns"), aws("sqs")
    topics = {t["TopicArn"] for t in sns.list_topics()["Topics"]}
    assert not {t for t in topics if t.rsplit(":", 1)[1] in _TOPIC_NAMES}
    subscriptions = {s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]}
    assert outputs["subscription_arn"] not in subscriptions
    urls = sqs.list_queues(QueueNamePrefix="corpus-orders").get("QueueUrls", [])
    assert urls == []
    for url in (outputs["work_url"], outputs["dead_letters_url"]):
        try:
            sqs.get_queue_attributes(QueueUrl=url)
        except sqs.exceptions.QueueDoesNotExist:
            continue
        raise AssertionError(f"queue {url} is still there")
