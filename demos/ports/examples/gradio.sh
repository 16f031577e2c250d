# One Gradio app, reachable from this computer only.
docker run --rm --name playground -p 127.0.0.1:7860:7860 deploy-playground:latest
