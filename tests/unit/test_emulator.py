"""The embedded AWS emulator: its state survives a dump and a load in another process,
load/reset give the clouds they promise, and serve() exposes the very same state."""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from phasegate.engines.sandbox import emulator as emulator_module
from phasegate.engines.sandbox.emulator import Emulator
from phasegate.engines.sandbox.server import serve

REGION = "us-east-1"
ACCOUNT = "123456789012"
SRC = Path(emulator_module.__file__).resolve().parents[3]
_AWS_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN")


def _fake_aws_env(mp: pytest.MonkeyPatch, home: Path) -> None:
    """Fake credentials and no shared config: nothing here can reach real AWS."""
    for name in _AWS_ENV:
        mp.delenv(name, raising=False)
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    # The emulator sets these with setdefault; put back whatever was there after us.
    mp.delenv("MOTO_EC2_LOAD_DEFAULT_AMIS", raising=False)
    mp.delenv("MOTO_IAM_LOAD_MANAGED_POLICIES", raising=False)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with pytest.MonkeyPatch.context() as mp:
        _fake_aws_env(mp, tmp_path_factory.mktemp("home"))
        emulator = Emulator(REGION, ACCOUNT)
        emulator.start()
        emulator.reset()
        try:
            yield emulator
        finally:
            emulator.reset()
            emulator.stop()


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def clean(emu: Emulator) -> Iterator[Emulator]:
    """The module's emulator, running, on an empty cloud."""
    emu.start()
    emu.reset()
    yield emu
    emu.start()
    emu.reset()


# --- a cloud with one of everything the phases build ----------------------------------


def _build_cloud(session: boto3.Session) -> dict[str, Any]:
    """Create the test cloud; return ids and what was observed before the dump."""
    facts: dict[str, Any] = {}
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet_a = ec2.create_subnet(
        VpcId=vpc, CidrBlock="10.20.1.0/24", AvailabilityZone="us-east-1a"
    )["Subnet"]["SubnetId"]
    subnet_b = ec2.create_subnet(
        VpcId=vpc, CidrBlock="10.20.2.0/24", AvailabilityZone="us-east-1b"
    )["Subnet"]["SubnetId"]
    facts.update(vpc=vpc, subnet_a=subnet_a, subnet_b=subnet_b)

    s3 = session.client("s3")
    s3.create_bucket(Bucket="phasegate-artifacts")
    s3.put_bucket_versioning(
        Bucket="phasegate-artifacts", VersioningConfiguration={"Status": "Enabled"}
    )
    v1 = s3.put_object(Bucket="phasegate-artifacts", Key="model.bin", Body=b"weights v1")
    v2 = s3.put_object(Bucket="phasegate-artifacts", Key="model.bin", Body=b"weights v2!")
    facts["versions"] = {v1["VersionId"]: "weights v1", v2["VersionId"]: "weights v2!"}
    facts["latest_version"] = v2["VersionId"]

    kms = session.client("kms")
    sym = kms.create_key(Description="data key")["KeyMetadata"]["KeyId"]
    ciphertext = kms.encrypt(KeyId=sym, Plaintext=b"the plaintext")["CiphertextBlob"]
    signer = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public_key = kms.get_public_key(KeyId=signer)["PublicKey"]
    facts.update(
        sym=sym,
        ciphertext=base64.b64encode(ciphertext).decode(),
        signer=signer,
        public_key=base64.b64encode(public_key).decode(),
    )

    iam = session.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "eks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role_arn = iam.create_role(RoleName="eks-cluster", AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]
    policy_arn = "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
    iam.attach_role_policy(RoleName="eks-cluster", PolicyArn=policy_arn)
    policy = iam.get_policy(PolicyArn=policy_arn)["Policy"]
    document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=policy["DefaultVersionId"])[
        "PolicyVersion"
    ]["Document"]
    facts.update(role_arn=role_arn, policy_arn=policy_arn, policy_document=document)

    eks = session.client("eks")
    eks.create_cluster(
        name="ai-platform", roleArn=role_arn, resourcesVpcConfig={"subnetIds": [subnet_a, subnet_b]}
    )
    eks.create_nodegroup(
        clusterName="ai-platform",
        nodegroupName="gpu",
        nodeRole=role_arn,
        subnets=[subnet_a],
        scalingConfig={"minSize": 1, "maxSize": 5, "desiredSize": 3},
    )

    elbv2 = session.client("elbv2")
    lb = elbv2.create_load_balancer(Name="ingress", Subnets=[subnet_a, subnet_b])
    facts["lb_arn"] = lb["LoadBalancers"][0]["LoadBalancerArn"]

    route53 = session.client("route53")
    zone = route53.create_hosted_zone(Name="example.internal.", CallerReference="zone-1")
    zone_id = zone["HostedZone"]["Id"]
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "api.example.internal.",
                        "Type": "A",
                        "SetIdentifier": colour,
                        "Weight": weight,
                        "TTL": 60,
                        "ResourceRecords": [{"Value": address}],
                    },
                }
                for colour, weight, address in (("blue", 90, "10.0.0.1"), ("green", 10, "10.0.0.2"))
            ]
        },
    )
    facts["zone_id"] = zone_id

    cloudwatch = session.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="gpu-errors",
        MetricName="Errors",
        Namespace="Phasegate",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName="gpu-errors", StateValue="ALARM", StateReason="test")
    return facts


_CHILD = r"""
import base64, json, sys
from pathlib import Path
from phasegate.engines.sandbox.emulator import Emulator

facts = json.loads(sys.argv[2])
emu = Emulator("us-east-1")
emu.start()
emu.load(Path(sys.argv[1]).read_bytes())
session = emu.session()
out = {}

ec2 = session.client("ec2")
vpc = ec2.describe_vpcs(VpcIds=[facts["vpc"]])["Vpcs"][0]
subnet = ec2.describe_subnets(SubnetIds=[facts["subnet_a"]])["Subnets"][0]
out["vpc_cidr"] = vpc["CidrBlock"]
out["subnet"] = [subnet["VpcId"], subnet["CidrBlock"], subnet["AvailabilityZone"]]

s3 = session.client("s3")
listed = s3.list_object_versions(Bucket="phasegate-artifacts")["Versions"]
out["listed_versions"] = {v["VersionId"]: v["IsLatest"] for v in listed}
out["bodies"] = {
    vid: s3.get_object(Bucket="phasegate-artifacts", Key="model.bin", VersionId=vid)["Body"]
    .read()
    .decode()
    for vid in facts["versions"]
}
current = s3.get_object(Bucket="phasegate-artifacts", Key="model.bin")
out["current"] = current["Body"].read().decode()

kms = session.client("kms")
out["decrypted"] = kms.decrypt(CiphertextBlob=base64.b64decode(facts["ciphertext"]))[
    "Plaintext"
].decode()
signature = kms.sign(
    KeyId=facts["signer"], Message=b"release v7", SigningAlgorithm="RSASSA_PSS_SHA_256"
)["Signature"]
out["signature"] = base64.b64encode(signature).decode()
out["kms_verifies"] = kms.verify(
    KeyId=facts["signer"],
    Message=b"release v7",
    Signature=signature,
    SigningAlgorithm="RSASSA_PSS_SHA_256",
)["SignatureValid"]
public_key = kms.get_public_key(KeyId=facts["signer"])["PublicKey"]
out["public_key"] = base64.b64encode(public_key).decode()

iam = session.client("iam")
out["role_arn"] = iam.get_role(RoleName="eks-cluster")["Role"]["Arn"]
attached = iam.list_attached_role_policies(RoleName="eks-cluster")["AttachedPolicies"]
out["attached"] = [p["PolicyArn"] for p in attached]
policy = iam.get_policy(PolicyArn=facts["policy_arn"])["Policy"]
out["policy_attachments"] = policy["AttachmentCount"]
out["policy_document"] = iam.get_policy_version(
    PolicyArn=facts["policy_arn"], VersionId=policy["DefaultVersionId"]
)["PolicyVersion"]["Document"]

eks = session.client("eks")
out["cluster_role"] = eks.describe_cluster(name="ai-platform")["cluster"]["roleArn"]
out["scaling"] = eks.describe_nodegroup(clusterName="ai-platform", nodegroupName="gpu")[
    "nodegroup"
]["scalingConfig"]

lb = session.client("elbv2").describe_load_balancers(LoadBalancerArns=[facts["lb_arn"]])
out["lb_subnets"] = sorted(z["SubnetId"] for z in lb["LoadBalancers"][0]["AvailabilityZones"])

records = session.client("route53").list_resource_record_sets(HostedZoneId=facts["zone_id"])
out["weighted"] = sorted(
    [r["SetIdentifier"], r["Weight"], r["ResourceRecords"][0]["Value"]]
    for r in records["ResourceRecordSets"]
    if "SetIdentifier" in r
)

alarm = session.client("cloudwatch").describe_alarms(AlarmNames=["gpu-errors"])["MetricAlarms"]
out["alarm"] = [alarm[0]["StateValue"], alarm[0]["StateReason"]]
print(json.dumps(out))
"""


def test_state_round_trips_through_another_process(emu: Emulator, tmp_path: Path) -> None:
    emu.start()
    emu.reset()
    facts = _build_cloud(emu.session())
    dump = tmp_path / "cloud.bin"
    dump.write_bytes(emu.dump())

    env = {k: v for k, v in os.environ.items() if k != "MOTO_ACCOUNT_ID"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["HOME"] = str(tmp_path)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(dump), json.dumps(facts)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout.strip().splitlines()[-1])

    assert out["vpc_cidr"] == "10.20.0.0/16"
    assert out["subnet"] == [facts["vpc"], "10.20.1.0/24", "us-east-1a"]

    assert out["listed_versions"] == {
        vid: vid == facts["latest_version"] for vid in facts["versions"]
    }
    assert out["bodies"] == facts["versions"]
    assert out["current"] == "weights v2!"

    assert out["decrypted"] == "the plaintext"
    assert out["kms_verifies"] is True
    assert out["public_key"] == facts["public_key"]
    # The signature made after the load checks out against the key read before the dump:
    # the private key itself came across, not a new one.
    public_key = serialization.load_der_public_key(base64.b64decode(facts["public_key"]))
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(
        base64.b64decode(out["signature"]),
        b"release v7",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
        hashes.SHA256(),
    )

    assert out["role_arn"] == facts["role_arn"]
    assert out["attached"] == [facts["policy_arn"]]
    assert out["policy_attachments"] == 1
    assert out["policy_document"] == facts["policy_document"]

    assert out["cluster_role"] == facts["role_arn"]
    assert out["scaling"] == {"minSize": 1, "maxSize": 5, "desiredSize": 3}
    assert out["lb_subnets"] == sorted([facts["subnet_a"], facts["subnet_b"]])
    assert out["weighted"] == [["blue", 90, "10.0.0.1"], ["green", 10, "10.0.0.2"]]
    assert out["alarm"] == ["ALARM", "test"]


# --- load / reset ----------------------------------------------------------------------


def _user_vpcs(session: boto3.Session) -> list[str]:
    vpcs = session.client("ec2").describe_vpcs()["Vpcs"]
    return [v["VpcId"] for v in vpcs if not v["IsDefault"]]


def _bucket_names(session: boto3.Session) -> list[str]:
    return [b["Name"] for b in session.client("s3").list_buckets()["Buckets"]]


def _populate(session: boto3.Session) -> None:
    session.client("ec2").create_vpc(CidrBlock="10.9.0.0/16")
    session.client("s3").create_bucket(Bucket="keep-me")
    session.client("iam").create_role(RoleName="worker", AssumeRolePolicyDocument="{}")


def test_load_of_empty_bytes_gives_an_empty_cloud(clean: Emulator) -> None:
    session = clean.session()
    _populate(session)
    clean.load(b"")
    assert _user_vpcs(session) == []
    assert _bucket_names(session) == []
    assert session.client("iam").list_roles()["Roles"] == []


def test_reset_empties_the_cloud(clean: Emulator) -> None:
    session = clean.session()
    _populate(session)
    session.client("kms").create_key()
    clean.reset()
    assert _user_vpcs(session) == []
    assert _bucket_names(session) == []
    assert session.client("kms").list_keys()["Keys"] == []
    # A fresh account still has its default VPC, as in AWS.
    assert session.client("ec2").describe_vpcs(
        Filters=[{"Name": "is-default", "Values": ["true"]}]
    )["Vpcs"]


def test_load_replaces_the_current_state(clean: Emulator) -> None:
    session = clean.session()
    session.client("s3").create_bucket(Bucket="in-the-dump")
    dumped = clean.dump()
    session.client("s3").create_bucket(Bucket="made-after-the-dump")
    clean.load(dumped)
    assert _bucket_names(session) == ["in-the-dump"]


def _aws_policy(iam: Any, arn: str) -> dict[str, Any]:
    """What IAM says of an AWS-managed policy: the policy, its versions and tags."""
    return {
        "policy": iam.get_policy(PolicyArn=arn)["Policy"],
        "versions": [
            (v["VersionId"], v["IsDefaultVersion"], v["Document"])
            for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]
        ],
        "tags": iam.list_policy_tags(PolicyArn=arn)["Tags"],
    }


def test_aws_managed_policies_come_back_as_they_were_used_and_as_they_were_not(
    clean: Emulator,
) -> None:
    # A dump carries the ~1,600 untouched AWS-managed policies as names, made again on
    # load: ids must survive, and each way of changing one must still travel whole.
    iam = clean.session().client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    iam.create_role(RoleName="node", AssumeRolePolicyDocument=trust)
    arns = {
        how: f"arn:aws:iam::aws:policy/{name}"
        for how, name in [
            ("untouched", "AmazonEKSClusterPolicy"),
            ("attached", "AmazonEKSWorkerNodePolicy"),
            ("detached again", "AmazonEKS_CNI_Policy"),
            ("tagged", "AmazonS3ReadOnlyAccess"),
            ("versioned", "ReadOnlyAccess"),
            ("versioned and pruned", "AmazonEC2ReadOnlyAccess"),
        ]
    }
    iam.attach_role_policy(RoleName="node", PolicyArn=arns["attached"])
    iam.attach_role_policy(RoleName="node", PolicyArn=arns["detached again"])
    iam.detach_role_policy(RoleName="node", PolicyArn=arns["detached again"])
    iam.tag_policy(PolicyArn=arns["tagged"], Tags=[{"Key": "team", "Value": "data"}])
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}],
    }
    iam.create_policy_version(PolicyArn=arns["versioned"], PolicyDocument=json.dumps(document))
    # One version again, as it came, but its next version number has moved on.
    pruned = iam.create_policy_version(
        PolicyArn=arns["versioned and pruned"], PolicyDocument=json.dumps(document)
    )["PolicyVersion"]["VersionId"]
    iam.delete_policy_version(PolicyArn=arns["versioned and pruned"], VersionId=pruned)
    before = {how: _aws_policy(iam, arn) for how, arn in arns.items()}
    count = len(iam.list_policies(Scope="AWS", MaxItems=1000)["Policies"])

    clean.load(clean.dump())

    assert {how: _aws_policy(iam, arn) for how, arn in arns.items()} == before
    assert before["attached"]["policy"]["AttachmentCount"] == 1
    assert before["tagged"]["tags"] == [{"Key": "team", "Value": "data"}]
    assert len(before["versioned"]["versions"]) == 2
    attached = iam.list_attached_role_policies(RoleName="node")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [arns["attached"]]
    assert len(iam.list_policies(Scope="AWS", MaxItems=1000)["Policies"]) == count
    again = iam.create_policy_version(
        PolicyArn=arns["versioned and pruned"], PolicyDocument=json.dumps(document)
    )["PolicyVersion"]["VersionId"]
    assert int(again.lstrip("v")) == int(pruned.lstrip("v")) + 1
    # The role holds the very policy IAM lists: detaching it counts down the same one.
    iam.detach_role_policy(RoleName="node", PolicyArn=arns["attached"])
    assert iam.get_policy(PolicyArn=arns["attached"])["Policy"]["AttachmentCount"] == 0


def test_load_of_garbage_raises_and_keeps_the_state(clean: Emulator) -> None:
    session = clean.session()
    _populate(session)
    good = clean.dump()
    envelope = pickle.loads(good)
    tampered = dict(envelope, state=envelope["state"][:-1] + bytes([envelope["state"][-1] ^ 1]))
    bad_blobs = {
        "garbage": b"this is not a dump",
        "truncated": good[: len(good) // 2],
        "future format": pickle.dumps({"format": 99, "services": {}}),
        "damaged state": pickle.dumps(tampered),
        "code in the envelope": pickle.dumps({"format": 1, "state": Path("/")}),
    }
    for label, blob in bad_blobs.items():
        with pytest.raises(ValueError) as caught:
            clean.load(blob)
        assert "dump" in str(caught.value), label
    with pytest.raises(ValueError, match="format 99"):
        clean.load(bad_blobs["future format"])
    assert _bucket_names(session) == ["keep-me"]
    assert len(_user_vpcs(session)) == 1


def test_load_that_fails_while_decoding_leaves_an_empty_cloud(clean: Emulator) -> None:
    session = clean.session()
    _populate(session)
    session.client("s3").put_object(Bucket="keep-me", Key="a", Body=b"x" * 1000)
    envelope = pickle.loads(clean.dump())
    # Intact envelope and checksum around a state cut short: decoding gets part-way.
    state = zlib.compress(zlib.decompress(envelope["state"])[:-50])
    cut = dict(envelope, state=state, sha256=hashlib.sha256(state).hexdigest())
    with pytest.raises(ValueError, match="now empty"):
        clean.load(pickle.dumps(cut))
    assert _bucket_names(session) == []
    assert _user_vpcs(session) == []
    gc.collect()  # objects decoded before the failure are closed, not leaked


# --- session isolation ----------------------------------------------------------------


def test_session_ignores_the_users_aws_configuration(
    clean: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nendpoint_url = http://192.0.2.1:9\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://192.0.2.1:9")
    monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", "true")
    session = clean.session()
    session.client("s3").create_bucket(Bucket="sandbox-only")
    assert _bucket_names(session) == ["sandbox-only"]
    credentials = session.get_credentials()
    assert credentials is not None
    assert (credentials.access_key, credentials.secret_key) == ("sandbox", "sandbox")


def test_session_refuses_to_call_out_when_the_emulator_is_stopped(clean: Emulator) -> None:
    session = clean.session()
    clean.stop()
    try:
        with pytest.raises(RuntimeError, match="not running"):
            session.client("s3").list_buckets()
    finally:
        clean.start()


# --- serve -----------------------------------------------------------------------------


def _plain_client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def test_serve_exposes_the_emulators_own_state(clean: Emulator) -> None:
    session = clean.session()
    vpc = session.client("ec2").create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    urls: queue.Queue[str] = queue.Queue()
    errors: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        try:
            serve(clean, port=0, ready=urls.put, stop=stop)
        except BaseException as exc:
            errors.append(exc)

    server = threading.Thread(target=run, daemon=True)
    server.start()
    try:
        url = urls.get(timeout=30)
        assert url.startswith("http://127.0.0.1:")
        ec2 = _plain_client("ec2", url)
        found = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"]
        assert [v["CidrBlock"] for v in found] == ["10.42.0.0/16"]
        s3 = _plain_client("s3", url)
        s3.create_bucket(Bucket="made-through-the-endpoint")
        ec2.close()
        s3.close()
    finally:
        stop.set()
        server.join(timeout=30)
    assert not server.is_alive()
    assert errors == []

    dumped = clean.dump()
    clean.reset()
    assert _bucket_names(session) == []
    clean.load(dumped)
    assert _bucket_names(session) == ["made-through-the-endpoint"]
    # Once stop is set the endpoint is gone.
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


@pytest.mark.parametrize("host", ["example.com", "", "10.0.0"])
def test_serve_refuses_a_host_that_is_not_an_ip_address(emu: Emulator, host: str) -> None:
    with pytest.raises(ValueError, match="serves on an IP address"):
        serve(emu, host=host, stop=threading.Event())


def test_a_tls_only_bucket_policy_lets_sdk_requests_through_and_denials_stand(
    clean: Emulator,
) -> None:
    # S3 denies on `aws:SecureTransport: false` only without TLS; every SDK uses TLS.
    s3 = clean.session().client("s3", region_name=REGION)
    for bucket, deny in (
        ("tls-only", {"Bool": {"aws:SecureTransport": "false"}}),
        ("locked", None),
    ):
        s3.create_bucket(Bucket=bucket)
        statement: dict[str, Any] = {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        }
        if deny:
            statement["Condition"] = deny
        s3.put_bucket_policy(
            Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        )
    s3.put_object(Bucket="tls-only", Key="data", Body=b"kept")
    assert s3.get_object(Bucket="tls-only", Key="data")["Body"].read() == b"kept"
    with pytest.raises(ClientError, match=r"Forbidden|AccessDenied"):
        s3.put_object(Bucket="locked", Key="data", Body=b"no")


def test_a_copy_is_made_only_while_the_source_has_the_etag_it_names(clean: Emulator) -> None:
    """CopySourceIfMatch, on CopyObject and UploadPartCopy, as S3 answers it: the data
    copy relies on it to copy the version it listed."""
    s3 = clean.session().client("s3", region_name=REGION)
    s3.create_bucket(Bucket="source-bucket")
    s3.create_bucket(Bucket="target-bucket")
    listed = s3.put_object(Bucket="source-bucket", Key="a b+c%.csv", Body=b"v1")["ETag"]
    s3.put_object(Bucket="source-bucket", Key="a b+c%.csv", Body=b"v2, rewritten")
    source = {"Bucket": "source-bucket", "Key": "a b+c%.csv"}

    with pytest.raises(ClientError) as caught:
        s3.copy_object(Bucket="target-bucket", Key="t", CopySource=source, CopySourceIfMatch=listed)
    assert caught.value.response["Error"]["Code"] == "PreconditionFailed"
    upload = s3.create_multipart_upload(Bucket="target-bucket", Key="t")["UploadId"]
    with pytest.raises(ClientError) as caught:
        s3.upload_part_copy(
            Bucket="target-bucket", Key="t", UploadId=upload, PartNumber=1,
            CopySource=source, CopySourceIfMatch=listed,
        )  # fmt: skip
    assert caught.value.response["Error"]["Code"] == "PreconditionFailed"
    assert "Contents" not in s3.list_objects_v2(Bucket="target-bucket")

    now = s3.head_object(Bucket="source-bucket", Key="a b+c%.csv")["ETag"]
    s3.copy_object(Bucket="target-bucket", Key="t", CopySource=source, CopySourceIfMatch=now)
    assert s3.get_object(Bucket="target-bucket", Key="t")["Body"].read() == b"v2, rewritten"


def test_bucket_size_metrics_count_the_objects_bytes_by_storage_class(clean: Emulator) -> None:
    """What a plan's storage estimate reads (``AWS/S3`` ``BucketSizeBytes``, one figure
    per storage class), as S3 reports it rather than moto's size of its own objects."""
    from datetime import UTC, datetime, timedelta

    session = clean.session()
    s3 = session.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="sized")
    s3.put_object(Bucket="sized", Key="a", Body=b"x" * 3000)
    s3.put_object(Bucket="sized", Key="b", Body=b"y" * 500)
    s3.put_object(Bucket="sized", Key="c", Body=b"z" * 70, StorageClass="STANDARD_IA")
    s3.put_object(Bucket="sized", Key="a", Body=b"x" * 1000)  # a key's current object counts
    cloudwatch = session.client("cloudwatch", region_name=REGION)
    now = datetime.now(UTC)
    found = {}
    for kind in ("StandardStorage", "StandardIAStorage", "GlacierStorage"):
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/S3",
            MetricName="BucketSizeBytes",
            Dimensions=[
                {"Name": "BucketName", "Value": "sized"},
                {"Name": "StorageType", "Value": kind},
            ],
            StartTime=now - timedelta(days=2),
            EndTime=now,
            Period=86400,
            Statistics=["Average"],
        )["Datapoints"]
        found[kind] = [p["Average"] for p in points]
    assert found == {"StandardStorage": [1500.0], "StandardIAStorage": [70.0], "GlacierStorage": []}
