"""The embedded AWS sandbox of `argoplug run --aws-sandbox FILE`: moto's server in-process, with resources.

`AwsSandbox.from_file(FILE)` reads the account, region and what to create (SageMaker pipelines, Glue jobs,
Step Functions state machines, Lambda functions), and how the executions of a pipeline or the runs of a
Glue job behave (`execution`, `job_run`: `argoplug.aws.scenarios`); as a context manager it serves them on
a free loopback port and gives the environment (`env`) that points a plugin sidecar at it. moto and boto3
are imported when the sandbox starts, not before.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import typing
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import yaml

from argoplug.aws import account_id
from argoplug.aws.scenarios import (
    SandboxExecution,
    SandboxJobRun,
    SandboxStep,
    ScenarioLayer,
    execution_problems,
    job_run_problems,
    summary,
)

__all__ = [
    "DEFAULT_DEFINITION",
    "DEFAULT_STATE_MACHINE",
    "AwsSandbox",
    "SandboxAccessEntry",
    "SandboxEksCluster",
    "SandboxError",
    "SandboxExecution",
    "SandboxFile",
    "SandboxGlueJob",
    "SandboxJobRun",
    "SandboxLambdaFunction",
    "SandboxPipeline",
    "SandboxStateMachine",
    "SandboxStep",
]

# SageMaker's PipelineName / PipelineDisplayName pattern (botocore's model); moto does not check it.
_PIPELINE_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_EKS_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:(role|user|assumed-role)/.+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")

# A pipeline that validates and runs in moto (which accepts any JSON and succeeds every execution).
DEFAULT_DEFINITION: dict[str, Any] = {
    "Version": "2020-12-01",
    "Metadata": {},
    "Parameters": [],
    "PipelineExperimentConfig": {
        "ExperimentName": {"Get": "Execution.PipelineName"},
        "TrialName": {"Get": "Execution.PipelineExecutionId"},
    },
    "Steps": [],
}

# A state machine that succeeds at once with its input as its output (Amazon States Language, a Pass state).
DEFAULT_STATE_MACHINE: dict[str, Any] = {
    "Comment": "argoplug sandbox: returns its input",
    "StartAt": "Done",
    "States": {"Done": {"Type": "Pass", "End": True}},
}
# Glue job names (GetJob's JobName: 1-255 characters of the single-line string pattern) and Lambda
# function names (CreateFunction: letters, digits, - and _, at most 64); state machine names (1-80).
_GLUE_JOB_NAME = re.compile(r"^[\w .:/=+@-]{1,255}$")
_LAMBDA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STATE_MACHINE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")

# The fake credentials moto accepts; real ones never reach the sandbox.
_FAKE_KEY = "testing"

_active_lock = threading.Lock()
_active: AwsSandbox | None = None


class SandboxError(Exception):
    """The sandbox FILE is missing, not YAML or has wrong fields (named), or the sandbox cannot start."""


class SandboxPipeline(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A SageMaker pipeline to create (CreatePipeline).

    `definition` is the pipeline definition as a YAML/JSON object or JSON text (default: an empty
    pipeline); `role_arn` defaults to `arn:aws:iam::<account>:role/argoplug-sandbox-sagemaker`.
    `execution` says how its executions behave (`SandboxExecution`: running for N polls or seconds, then
    ending as declared, or until stopped; steps); without it they are moto's: Succeeded at once, and
    StopPipelineExecution and ListPipelineExecutionSteps not implemented (HTTP 500).
    """

    name: str
    display_name: str = ""
    description: str = ""
    definition: dict[str, Any] | str | None = None
    role_arn: str = ""
    execution: SandboxExecution | None = None


class SandboxGlueJob(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An AWS Glue job to create (CreateJob). `job_run` says how its runs behave (`SandboxJobRun`: running
    for N polls or seconds, then ending as declared, or until stopped), and then `max_concurrent_runs`
    (default 1, as Glue's) refuses more at once; without it the runs are moto's: SUCCEEDED at once, and
    BatchStopJobRun not implemented (HTTP 500)."""

    name: str
    script_location: str = ""
    max_concurrent_runs: int = 1
    default_arguments: dict[str, str] = {}
    role_arn: str = ""
    job_run: SandboxJobRun | None = None


class SandboxStateMachine(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A Step Functions state machine to create (CreateStateMachine), run for real by moto's interpreter of
    the Amazon States Language: a `Pass` state gives its input back, a `Fail` state fails the execution
    with its `Error` and `Cause`. `definition`: an object or JSON text (default `DEFAULT_STATE_MACHINE`)."""

    name: str
    definition: dict[str, Any] | str | None = None
    role_arn: str = ""


class SandboxLambdaFunction(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A Lambda function to create (CreateFunction). Without Docker moto runs no code: an invocation answers
    its payload back, as a function returning its event would."""

    name: str
    runtime: str = "python3.12"
    handler: str = "index.handler"
    role_arn: str = ""


class SandboxAccessEntry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An EKS access entry (CreateAccessEntry): the IAM principal and the Kubernetes user and groups it is
    mapped to (`username` default: EKS's, from the principal's ARN)."""

    principal_arn: str
    username: str = ""
    groups: list[str] = []


class SandboxEksCluster(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An EKS cluster to create (CreateCluster), played by a Kubernetes sandbox of its own that accepts EKS
    tokens mapped by `access_entries`; `kubernetes`: a YAML file of the objects that cluster holds first
    (namespaces, Roles, RoleBindings), relative to the sandbox FILE."""

    name: str
    kubernetes: str = ""
    access_entries: list[SandboxAccessEntry] = []


class SandboxFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The sandbox FILE: `account` (12 digits), `region`, and the `pipelines`, `glue_jobs`,
    `state_machines`, `lambda_functions` and `eks_clusters` to create."""

    account: str | int = "123456789012"
    region: str = "us-east-1"
    pipelines: list[SandboxPipeline] = []
    glue_jobs: list[SandboxGlueJob] = []
    state_machines: list[SandboxStateMachine] = []
    lambda_functions: list[SandboxLambdaFunction] = []
    eks_clusters: list[SandboxEksCluster] = []


class AwsSandbox:
    """moto's AWS server in-process on a free loopback port, with SageMaker pipelines created in it.

    Usage::

        with AwsSandbox.from_file("sandbox.yaml") as sandbox:
            subprocess.run([...], env={**os.environ, **sandbox.env})

    moto takes the account from MOTO_ACCOUNT_ID in this process's environment on every request (moto 5:
    `BaseResponse.get_current_account`), so `__enter__` sets it to `account` (STS GetCallerIdentity and
    every ARN show it) and `__exit__` restores it; hence one sandbox at a time per process. moto keeps its
    state per process: entering resets it. The executions of a pipeline with an `execution`, and the runs
    of a Glue job with a `job_run`, behave as those say (`argoplug.aws.scenarios.ScenarioLayer`, in front
    of moto's app); others are moto's: they succeed at once, and its unimplemented calls
    (ListPipelineExecutionSteps, StopPipelineExecution, BatchStopJobRun) answer HTTP 500. `speed` divides
    the `seconds` those declare (as `argoplug run --speed` divides its waits). While it runs, moto's Step
    Functions run state machines (its `execute_state_machine` option) and its Lambda runs no Docker (an
    invocation answers its payload back): moto's options are per process too.
    """

    def __init__(
        self,
        *,
        account: str = "123456789012",
        region: str = "us-east-1",
        pipelines: list[SandboxPipeline] | None = None,
        glue_jobs: list[SandboxGlueJob] | None = None,
        state_machines: list[SandboxStateMachine] | None = None,
        lambda_functions: list[SandboxLambdaFunction] | None = None,
        eks_clusters: list[SandboxEksCluster] | None = None,
        source: str = "",
        quiet: bool = True,
        speed: float = 1.0,
    ) -> None:
        if not _ACCOUNT.match(account):
            raise SandboxError(f"{source or 'sandbox'}: `account`: expected 12 digits, got {account!r}")
        if not speed > 0:
            raise SandboxError(f"{source or 'sandbox'}: the speed must be above 0, got {speed!r}")
        self.speed = speed
        self.account = account
        self.region = region
        self.pipelines = list(pipelines or [])
        self.glue_jobs = list(glue_jobs or [])
        self.state_machines = list(state_machines or [])
        self.lambda_functions = list(lambda_functions or [])
        self.eks_clusters = list(eks_clusters or [])
        self._saved_config: dict[str, dict[str, Any]] = {}
        self._clients: dict[str, Any] = {}  # per service, for the server running
        self._roles: dict[str, str] = {}  # role name → ARN, created in the server running
        self.source = source
        self.quiet = quiet
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._endpoint = ""
        self._saved_env: dict[str, str | None] = {}
        self._saved_log_levels: dict[str, int] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, speed: float = 1.0) -> AwsSandbox:
        """Read a sandbox FILE (YAML)::

            account: "100000000002"     # 12 digits (default 123456789012); quote it: YAML reads 0042 as octal
            region: us-west-2           # default us-east-1
            pipelines:
              - name: MyPipeline
                display_name: My-Pipeline    # optional
                definition: {...}            # optional: object or JSON text
                role_arn: arn:aws:iam::100000000002:role/x   # optional
                execution:                   # optional: how its executions behave (default: moto's)
                  polls: 3                   # Executing for 3 DescribePipelineExecution calls (or seconds: S)
                  then: Failed               # Succeeded (default), Failed, Stopped, Executing (until stopped)
                  failure_reason: "..."      # optional
                  stopping_polls: 1          # Stopping for 1 Describe after StopPipelineExecution (default)
                  steps: [{name: Train, status: Failed, failure_reason: "..."}]   # optional
            glue_jobs:
              - name: MyGlueJob              # optional: script_location, max_concurrent_runs,
                                             # default_arguments, role_arn
                job_run: {polls: 3, then: FAILED, error_message: "..."}   # optional, as `execution`
            state_machines:
              - name: MyStepFunction         # optional: definition (Amazon States Language), role_arn
            lambda_functions:
              - name: MyLambdaFunction       # optional: runtime, handler, role_arn
            eks_clusters:
              - name: remote-cluster         # played by a Kubernetes sandbox (kube.sandbox.remote_eks)
                kubernetes: remote-cluster.yaml   # optional: its objects, relative to this file
                access_entries:              # who its EKS tokens map to
                  - principal_arn: arn:aws:iam::100000000002:role/pod-runner
                    username: pod-runner     # optional (EKS's default from the ARN); groups: [...] optional

        `speed` divides the `seconds` an `execution` or `job_run` declares. An EKS cluster's `kubernetes`
        path is made absolute (relative to the file). Raises SandboxError naming the file and the bad field
        when it is missing, not YAML or wrong.
        """
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SandboxError(f"cannot read AWS sandbox file {where}: {exc.strerror or exc}") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SandboxError(f"AWS sandbox file {where} is not YAML: {exc}") from exc
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SandboxError(
                f"AWS sandbox file {where}: expected a mapping with account, region and pipelines, "
                f"got {type(data).__name__}"
            )
        try:
            spec = msgspec.convert(data, SandboxFile, strict=False)
        except msgspec.ValidationError as exc:
            raise SandboxError(f"AWS sandbox file {where}: {_field_message(exc)}") from None
        for cluster in spec.eks_clusters:
            if cluster.kubernetes:
                cluster.kubernetes = str(Path(path).parent / cluster.kubernetes)
        return cls._from_spec(spec, where, speed)

    @classmethod
    def _from_spec(cls, spec: SandboxFile, where: str, speed: float = 1.0) -> AwsSandbox:
        account = account_id(spec.account)
        if not _ACCOUNT.match(account):
            raise SandboxError(
                f"AWS sandbox file {where}: `account`: expected 12 digits, got {spec.account!r}"
            )
        if not _REGION.match(spec.region):
            raise SandboxError(
                f"AWS sandbox file {where}: `region`: expected an AWS region like us-west-2, "
                f"got {spec.region!r}"
            )
        for field, items, pattern, what in (
            ("glue_jobs", spec.glue_jobs, _GLUE_JOB_NAME, "a Glue job name (at most 255 characters)"),
            (
                "state_machines",
                spec.state_machines,
                _STATE_MACHINE_NAME,
                "a state machine name (letters, digits, - and _, at most 80)",
            ),
            (
                "lambda_functions",
                spec.lambda_functions,
                _LAMBDA_NAME,
                "a Lambda function name (letters, digits, - and _, at most 64)",
            ),
        ):
            _check_names(where, field, [item.name for item in items], pattern, what)
        _check_names(
            where,
            "eks_clusters",
            [cluster.name for cluster in spec.eks_clusters],
            _EKS_CLUSTER_NAME,
            "an EKS cluster name (letters, digits, - and _, at most 100)",
        )
        for index, cluster in enumerate(spec.eks_clusters):
            for number, entry in enumerate(cluster.access_entries):
                if not _PRINCIPAL_ARN.match(entry.principal_arn):
                    raise SandboxError(
                        f"AWS sandbox file {where}: `eks_clusters[{index}].access_entries[{number}]"
                        f".principal_arn`: expected an IAM role or user ARN, got {entry.principal_arn!r}"
                    )
            if cluster.kubernetes and not Path(cluster.kubernetes).is_file():
                raise SandboxError(
                    f"AWS sandbox file {where}: `eks_clusters[{index}].kubernetes`: no file "
                    f"{cluster.kubernetes}"
                )
        for index, machine in enumerate(spec.state_machines):
            if isinstance(machine.definition, str):
                try:
                    json.loads(machine.definition)
                except ValueError as exc:
                    raise SandboxError(
                        f"AWS sandbox file {where}: `state_machines[{index}].definition`: not JSON text or "
                        f"an object ({exc})"
                    ) from None
        seen: set[str] = set()
        for index, pipeline in enumerate(spec.pipelines):
            at = f"`pipelines[{index}]"
            if not _PIPELINE_NAME.match(pipeline.name):
                raise SandboxError(
                    f"AWS sandbox file {where}: {at}.name`: {pipeline.name!r} is not a pipeline name "
                    "(letters, digits and inner hyphens, at most 256)"
                )
            if pipeline.name in seen:
                raise SandboxError(f"AWS sandbox file {where}: {at}.name`: {pipeline.name!r} appears twice")
            seen.add(pipeline.name)
            if pipeline.display_name and not _PIPELINE_NAME.match(pipeline.display_name):
                raise SandboxError(
                    f"AWS sandbox file {where}: {at}.display_name`: {pipeline.display_name!r} is not a "
                    "display name (letters, digits and inner hyphens, at most 256)"
                )
            if isinstance(pipeline.definition, str):
                try:
                    json.loads(pipeline.definition)
                except ValueError as exc:
                    raise SandboxError(
                        f"AWS sandbox file {where}: {at}.definition`: not JSON text or an object ({exc})"
                    ) from None
        problems = [
            problem
            for index, pipeline in enumerate(spec.pipelines)
            if pipeline.execution is not None
            for problem in execution_problems(f"pipelines[{index}].execution", pipeline.execution)
        ]
        problems += [
            problem
            for index, job in enumerate(spec.glue_jobs)
            if job.job_run is not None
            for problem in job_run_problems(f"glue_jobs[{index}].job_run", job.job_run)
        ]
        if problems:
            raise SandboxError(f"AWS sandbox file {where}: {'; '.join(problems)}")
        return cls(
            account=account,
            region=spec.region,
            pipelines=spec.pipelines,
            glue_jobs=spec.glue_jobs,
            state_machines=spec.state_machines,
            lambda_functions=spec.lambda_functions,
            eks_clusters=spec.eks_clusters,
            source=where,
            speed=speed,
        )

    @property
    def endpoint_url(self) -> str:
        """The sandbox's URL (`http://127.0.0.1:<port>`); raises SandboxError before it started."""
        if not self._endpoint:
            raise SandboxError("the AWS sandbox is not started: use it as a context manager")
        return self._endpoint

    @property
    def env(self) -> dict[str, str]:
        """The environment for a plugin sidecar (merge it over `os.environ`).

        Points every AWS client at the sandbox (`AWS_ENDPOINT_URL`, and the SageMaker, STS, Glue, SFN and
        Lambda variants, which would win over it), with fake credentials that override real ones in the
        parent environment, the region, and no instance-metadata lookups. A parent's AWS_PROFILE still has
        to name a profile that exists (botocore loads it even when env credentials win): drop it for full
        isolation. Raises SandboxError before the sandbox started.
        """
        url = self.endpoint_url
        return {
            "AWS_ENDPOINT_URL": url,
            "AWS_ENDPOINT_URL_SAGEMAKER": url,
            "AWS_ENDPOINT_URL_STS": url,
            "AWS_ENDPOINT_URL_GLUE": url,
            "AWS_ENDPOINT_URL_SFN": url,
            "AWS_ENDPOINT_URL_LAMBDA": url,
            "AWS_ENDPOINT_URL_EKS": url,
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "false",
            "AWS_ACCESS_KEY_ID": _FAKE_KEY,
            "AWS_SECRET_ACCESS_KEY": _FAKE_KEY,
            # Empty: botocore sends no token, so a real session token in the parent env is not mixed in.
            "AWS_SESSION_TOKEN": "",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def describe(self) -> str:
        """One line: endpoint, account, region and what was created (pipelines, and any other kind)."""
        endpoint = self._endpoint or "(not started)"
        names = ", ".join(_named(p.name, p.execution) for p in self.pipelines) or "none"
        text = f"AWS sandbox (moto) at {endpoint}: account {self.account}, region {self.region}, "
        text += f"pipelines: {names}"
        if self.glue_jobs:
            text += f"; Glue jobs: {', '.join(_named(job.name, job.job_run) for job in self.glue_jobs)}"
        for what, items in (
            ("state machines", self.state_machines),
            ("Lambda functions", self.lambda_functions),
            ("EKS clusters", self.eks_clusters),
        ):
            if items:
                text += f"; {what}: {', '.join(item.name for item in items)}"
        if self.speed != 1.0 and any(
            behaviour is not None and behaviour.seconds is not None
            for behaviour in [*(p.execution for p in self.pipelines), *(j.job_run for j in self.glue_jobs)]
        ):
            text += f"; their seconds divided by {self.speed:g}"
        return text

    def __enter__(self) -> AwsSandbox:
        global _active
        with _active_lock:
            if _active is not None:
                raise SandboxError(
                    "another AWS sandbox is running in this process (moto's state is per process)"
                )
            _active = self
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _start(self) -> None:
        # Before moto is imported and serving: every request reads MOTO_ACCOUNT_ID (moto 5,
        # get_current_account). moto's in-process server builds botocore sessions too, so a user's
        # AWS_PROFILE (one that does not exist here makes botocore refuse) is unset while it runs.
        self._saved_env = {name: os.environ.get(name) for name in _SANDBOX_ENV}
        for name in _SANDBOX_ENV:
            os.environ.pop(name, None)
        os.environ["MOTO_ACCOUNT_ID"] = self.account
        if self.quiet:
            # werkzeug logs every request, and a traceback for each call moto does not implement; moto's
            # state machine interpreter logs each failed state as an error.
            self._saved_log_levels = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
            for name in _QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL)
        try:
            from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
            from werkzeug.serving import make_server
        except ImportError as exc:
            raise SandboxError(
                f"the AWS sandbox needs moto: pip install 'argoplug[sandbox]' ({exc})"
            ) from exc
        # moto's app (as its ThreadedMotoServer serves it) behind the layer that runs the declared
        # executions and job runs.
        app = ScenarioLayer(
            DomainDispatcherApplication(create_backend_app),
            pipelines={p.name: p.execution for p in self.pipelines if p.execution is not None},
            glue_jobs={
                job.name: (job.job_run, job.max_concurrent_runs)
                for job in self.glue_jobs
                if job.job_run is not None
            },
            speed=self.speed,
        )
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="argoplug-aws-sandbox", daemon=True)
        self._thread.start()
        self._endpoint = f"http://127.0.0.1:{server.server_port}"
        self._reset()
        self._configure_moto()
        self._create_pipelines()
        self._create_others()

    def _configure_moto(self) -> None:
        """Step Functions run their state machines; Lambda needs no Docker (restored by `_stop`)."""
        from moto.core.config import default_user_config

        config: Any = default_user_config
        for service, key, value in (
            ("stepfunctions", "execute_state_machine", True),
            ("lambda", "use_docker", False),
        ):
            section = config.setdefault(service, {})
            self._saved_config[service] = dict(section)
            section[key] = value

    def _client(self, service: str) -> Any:
        """A boto3 client of the running sandbox for `service`, made once per start."""
        if service in self._clients:
            return self._clients[service]
        import boto3

        try:
            client = boto3.session.Session().client(
                service,
                region_name=self.region,
                endpoint_url=self._endpoint,
                aws_access_key_id=_FAKE_KEY,
                aws_secret_access_key=_FAKE_KEY,
            )
        except Exception as exc:
            raise SandboxError(f"cannot create a {service} client for the sandbox: {exc}") from exc
        self._clients[service] = client
        return client

    def _role(self, name: str, service: str) -> str:
        """Create the IAM role `name` that `service` (lambda.amazonaws.com...) may assume, once per start;
        return its ARN."""
        if name in self._roles:
            return self._roles[name]
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
        iam = self._client("iam")
        try:
            role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        except iam.exceptions.EntityAlreadyExistsException:
            role = iam.get_role(RoleName=name)["Role"]
        self._roles[name] = str(role["Arn"])
        return self._roles[name]

    def _create_others(self) -> None:
        """Create the Glue jobs, state machines and Lambda functions (each kind's role first, if needed)."""
        for job in self.glue_jobs:
            role = job.role_arn or self._role("argoplug-sandbox-glue", "glue.amazonaws.com")
            request: dict[str, Any] = {
                "Name": job.name,
                "Role": role,
                "Command": {
                    "Name": "glueetl",
                    "ScriptLocation": job.script_location or f"s3://argoplug-sandbox/glue/{job.name}.py",
                },
                "ExecutionProperty": {"MaxConcurrentRuns": job.max_concurrent_runs},
            }
            if job.default_arguments:
                request["DefaultArguments"] = job.default_arguments
            self._create(
                "Glue job", job.name, lambda request=request: self._client("glue").create_job(**request)
            )
        for machine in self.state_machines:
            role = machine.role_arn or self._role("argoplug-sandbox-states", "states.amazonaws.com")
            definition = machine.definition if machine.definition is not None else DEFAULT_STATE_MACHINE
            text = definition if isinstance(definition, str) else json.dumps(definition)
            self._create(
                "state machine",
                machine.name,
                lambda name=machine.name, text=text, role=role: self._client(
                    "stepfunctions"
                ).create_state_machine(name=name, definition=text, roleArn=role),
            )
        for function in self.lambda_functions:
            role = function.role_arn or self._role("argoplug-sandbox-lambda", "lambda.amazonaws.com")
            self._create(
                "Lambda function",
                function.name,
                lambda function=function, role=role: self._client("lambda").create_function(
                    FunctionName=function.name,
                    Runtime=function.runtime,
                    Role=role,
                    Handler=function.handler,
                    Code={"ZipFile": _EMPTY_ZIP},
                ),
            )

        for cluster in self.eks_clusters:
            role = self._role("argoplug-sandbox-eks", "eks.amazonaws.com")
            self._create(
                "EKS cluster",
                cluster.name,
                lambda name=cluster.name, role=role: self._client("eks").create_cluster(
                    name=name, roleArn=role, resourcesVpcConfig={}
                ),
            )

    def point_eks_cluster(self, name: str, *, endpoint: str, ca_pem: str) -> None:
        """Make DescribeCluster of EKS cluster `name` answer `endpoint` and the CA `ca_pem` (PEM text), as
        a cluster whose API server is there (the Kubernetes sandbox playing it). moto makes up both, and
        has no call to set them, so they are set in its in-process backend. Raises SandboxError when the
        sandbox is not running or has no such cluster."""
        from moto.eks.models import eks_backends

        self.endpoint_url  # noqa: B018 - raises before the sandbox started
        try:
            cluster = eks_backends[self.account][self.region].clusters[name]
        except KeyError:
            raise SandboxError(f"the AWS sandbox has no EKS cluster {name!r}") from None
        cluster.endpoint = endpoint
        cluster.certificate_authority = {"data": base64.b64encode(ca_pem.encode()).decode("ascii")}

    @staticmethod
    def _create(what: str, name: str, create: Any) -> None:
        try:
            create()
        except SandboxError:
            raise
        except Exception as exc:
            raise SandboxError(f"cannot create sandbox {what} {name!r}: {exc}") from exc

    def _reset(self) -> None:
        request = urllib.request.Request(f"{self._endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def _create_pipelines(self) -> None:
        client = self._client("sagemaker")
        for pipeline in self.pipelines:
            definition = pipeline.definition if pipeline.definition is not None else DEFAULT_DEFINITION
            request: dict[str, Any] = {
                "PipelineName": pipeline.name,
                "PipelineDefinition": definition if isinstance(definition, str) else json.dumps(definition),
                "RoleArn": pipeline.role_arn
                or f"arn:aws:iam::{self.account}:role/argoplug-sandbox-sagemaker",
            }
            if pipeline.display_name:
                request["PipelineDisplayName"] = pipeline.display_name
            if pipeline.description:
                request["PipelineDescription"] = pipeline.description
            try:
                client.create_pipeline(**request)
            except Exception as exc:
                raise SandboxError(f"cannot create sandbox pipeline {pipeline.name!r}: {exc}") from exc

    def _stop(self) -> None:
        global _active
        if self._saved_config:
            from moto.core.config import default_user_config

            config: Any = default_user_config
            for service, section in self._saved_config.items():
                config[service] = section
            self._saved_config = {}
        self._clients, self._roles = {}, {}
        if self._server is not None:
            if self._thread is not None:  # shutdown() waits for serve_forever, which ends by closing it
                self._server.shutdown()
                self._thread.join()
            self._server.server_close()
            self._server, self._thread = None, None
        self._endpoint = ""
        for name, level in self._saved_log_levels.items():
            logging.getLogger(name).setLevel(level)
        self._saved_log_levels = {}
        if _active is self:
            for name, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            with _active_lock:
                _active = None


_QUIET_LOGGERS = ("werkzeug", "moto.stepfunctions.parser")
# Set (MOTO_ACCOUNT_ID) or unset (the profile) in this process while the sandbox runs, restored after.
_SANDBOX_ENV = ("MOTO_ACCOUNT_ID", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


def _empty_zip() -> bytes:
    """A zip archive holding one empty `index.py`: Lambda's CreateFunction wants code; moto runs none."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "")
    return buffer.getvalue()


_EMPTY_ZIP = _empty_zip()


def _check_names(where: str, field: str, names: list[str], pattern: re.Pattern[str], what: str) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        at = f"`{field}[{index}].name`"
        if not pattern.match(name):
            raise SandboxError(f"AWS sandbox file {where}: {at}: {name!r} is not {what}")
        if name in seen:
            raise SandboxError(f"AWS sandbox file {where}: {at}: {name!r} appears twice")
        seen.add(name)


def _named(name: str, behaviour: SandboxExecution | SandboxJobRun | None) -> str:
    return f"{name} ({summary(behaviour)})" if behaviour is not None else name


def _struct_at(path: str) -> Any:
    """The type at `path` (`pipelines[0].execution`) of the sandbox file: a Struct class, or the field's
    annotation (a Literal...) when it is not one; None for a path it does not know."""
    current: Any = SandboxFile
    for name in re.findall(r"[A-Za-z_]\w*", path):
        if not (isinstance(current, type) and issubclass(current, msgspec.Struct)):
            return None
        hint = typing.get_type_hints(current, include_extras=True).get(name)
        if hint is None:
            return None
        current = _unwrap(hint)
    return current


def _unwrap(hint: Any) -> Any:
    """The Struct class inside `list[X]`, `X | None` or `Annotated[X, ...]`, else `hint` itself."""
    for arg in typing.get_args(hint) if typing.get_origin(hint) is not typing.Literal else ():
        inner = _unwrap(arg)
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            return inner
    return hint


def _field_message(exc: msgspec.ValidationError) -> str:
    """Turn msgspec's "... - at `$.pipelines[0].name`" into "`pipelines[0].name`: ..."."""
    text = str(exc)
    message, _, path = text.partition(" - at ")
    path = path.strip("`").removeprefix("$").lstrip(".")
    if message.startswith("Object contains unknown field"):
        field = message.split("`")[1] if "`" in message else "?"
        kind = _struct_at(path)
        kind = kind if isinstance(kind, type) and issubclass(kind, msgspec.Struct) else SandboxFile
        known = ", ".join(f.name for f in msgspec.structs.fields(kind))
        where = f"{path}.{field}" if path else field
        return f"`{where}` is not a field (expected one of: {known})"
    if message.startswith("Object missing required field"):
        field = message.split("`")[1] if "`" in message else "?"
        return f"`{path + '.' if path else ''}{field}` is required"
    if message.startswith("Invalid enum value"):
        hint = _struct_at(path)
        if typing.get_origin(hint) is typing.Literal:
            message += f" (expected one of: {', '.join(str(value) for value in typing.get_args(hint))})"
    return f"`{path}`: {message}" if path else message
