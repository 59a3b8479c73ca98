# AWS: an Application Load Balancer in front of the kernel nodes, TLS from ACM.
# Target-group health check as the spec: readiness every 30 s, 5 s timeout, 2 healthy / 3
# unhealthy, 30 s deregistration delay. Register instances or ECS tasks on port 8000.

variable "vpc_id" {
  type        = string
  description = "VPC of the kernel nodes"
}

variable "public_subnet_ids" {
  type        = list(string)
  description = "At least two public subnets in different availability zones"
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate for the dashboard's host name"
}

variable "allowed_cidrs" {
  type        = list(string)
  default     = ["0.0.0.0/0"]
  description = "Who may reach the load balancer (narrow to the plant's addresses where possible)"
}

resource "aws_security_group" "alb" {
  name        = "neurohub-alb"
  description = "HTTPS to the NeuroHub MES load balancer"
  vpc_id      = var.vpc_id

  ingress {
    description = "HTTPS"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = var.allowed_cidrs
  }

  ingress {
    description = "HTTP, redirected to HTTPS"
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = var.allowed_cidrs
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_lb" "neurohub" {
  name                       = "neurohub-alb"
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.public_subnet_ids
  idle_timeout               = 30
  drop_invalid_header_fields = true
}

resource "aws_lb_target_group" "neurohub_backend" {
  name                 = "neurohub-backend-tg"
  port                 = 8000
  protocol             = "HTTP"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    enabled             = true
    path                = "/api/v1/health/readiness"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 30
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.neurohub.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.neurohub_backend.arn
  }
}

resource "aws_lb_listener" "http_redirect" {
  load_balancer_arn = aws_lb.neurohub.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

output "alb_dns_name" {
  value       = aws_lb.neurohub.dns_name
  description = "Point the dashboard's DNS name (CNAME or alias) here"
}
