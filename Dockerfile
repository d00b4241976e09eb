# syntax=docker/dockerfile:1
#
# One image for every Glimpse role: `glimpse serve` (API), `glimpse ui` (web UI), `glimpse db upgrade`
# and `glimpse index` (batch indexer). Two variants, chosen by build arguments:
#
#   CPU (default):  docker build -t glimpse:cpu .
#   GPU indexer:    docker build -t glimpse:gpu \
#                     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#                     --build-arg GLIMPSE_EXTRAS=postgres,gpu .
#   Ray cluster:    the same with GLIMPSE_EXTRAS=postgres,gpu,ray (docker-compose.yml, profile cluster)
#
# The GPU variant keeps the slim Python base on purpose: the CUDA builds of torch and faiss-gpu-cu12
# bring their CUDA 12 runtime libraries as pip packages (nvidia-*-cu12), and the host's driver is
# injected by the NVIDIA Container Toolkit, so an nvidia/cuda base would only add gigabytes.
# Keep torch's CUDA major version at 12 so torch and faiss load the same libcudart and cuBLAS.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG GLIMPSE_EXTRAS=postgres
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# torch first, from the index that matches the variant: PyPI's default Linux torch is a CUDA build
# of several GB. Its own layer, so editing the source does not download it again.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch torchvision
COPY . /src
# faiss-cpu (a base dependency) and faiss-gpu-cu12 both install the `faiss` package into the same
# folder; for the GPU variant remove faiss-cpu and reinstall faiss-gpu-cu12 so its files are whole.
RUN pip install "/src[${GLIMPSE_EXTRAS}]" \
 && case ",${GLIMPSE_EXTRAS}," in \
      *,gpu,*) gpu_version="$(pip show faiss-gpu-cu12 | sed -n 's/^Version: //p')" \
               && pip uninstall -y faiss-cpu \
               && pip install --no-deps --force-reinstall "faiss-gpu-cu12==${gpu_version}" ;; \
    esac \
 && glimpse --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
# HF_HOME / TORCH_HOME: model weights are downloaded once into a volume mounted at /models.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GLIMPSE_DATA_DIR=/data \
    HF_HOME=/models \
    TORCH_HOME=/models/torch
# The mount points exist in the image, owned by the service user, so that Docker initialises new
# named volumes with that owner and the non-root process can write to them.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/glimpse glimpse \
 && mkdir -p /data /models /media /home/glimpse/.ray \
 && chown glimpse:glimpse /data /models /home/glimpse/.ray
COPY --from=build /opt/venv /opt/venv
USER glimpse
WORKDIR /home/glimpse
EXPOSE 8000 8501
ENTRYPOINT ["glimpse"]
CMD ["--help"]
