# A Gradio app, a Streamlit app and a model server on one computer.
docker run -d --name chat \
  -p 127.0.0.1:7860:7860 \
  deploy-playground:latest

docker run -d --name dashboard -p 8501:8501 streamlit-demo
docker run -d --name ollama -p 11434:11434 -p 8501:8080 ollama/ollama
docker run -d --name metrics -P --expose 9090 prom/prometheus
